"""Value ranges the Avro types cannot state, checked where a stage message is decoded.

A decoded message may still hold values that would break a stage or a later ClickHouse write
(a face index over UInt16, liveness crops of the wrong size, a descriptor of the wrong length,
NaN sizes). `check` names the first such value as an `out_of_range` SchemaError, so the message
fails alone, with its reason, where it enters the stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sized
from datetime import UTC, datetime
from typing import Any, TypeVar

from processors.liveness import CROP_SIZE, SCALES
from schemas import SchemaError
from schemas.records import (
    Context,
    DescribedFace,
    Descriptors,
    DetectedFace,
    Detections,
    LiveFace,
    LivenessResults,
)
from streams.models.modelset import DESCRIPTOR_BYTES

Faced = Detections | LivenessResults | Descriptors
F = TypeVar("F", DetectedFace, LiveFace, DescribedFace)  # a face of a Faced record

OUT_OF_RANGE = "out_of_range"
UINT16_MAX = 65_535  # events.face_count, face_indexes, descriptors.face_index
LANDMARK_VALUES = 10  # 5 points x, y
LIVENESS_INPUT_BYTES = len(SCALES) * CROP_SIZE * CROP_SIZE * 3  # uint8 crops
# ClickHouse DateTime: seconds since 1970 in a UInt32.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2106, 2, 7, tzinfo=UTC)


def _fail(where: str, why: str) -> SchemaError:
    return SchemaError(OUT_OF_RANGE, f"{where}: {why}")


def _number(where: str, value: float, low: float, high: float = math.inf) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise _fail(where, f"{value!r} is not within [{low}, {high}]")


def _length(where: str, value: Sized, expected: int) -> None:
    if len(value) != expected:
        raise _fail(where, f"holds {len(value)}, not {expected}")


def check_context(context: Context) -> None:
    """The context's part of `check`: a message that passes it can be answered with an error
    event of its own."""
    for key in ("event_id", "account_id"):
        if not context[key]:
            raise _fail(f"context.{key}", "is empty")
    if not EARLIEST <= context["created_at"] < LATEST:
        raise _fail("context.created_at", f"{context['created_at']} is outside 1970..2106")


def _faces(record: Faced, faces: list[F], face: Callable[[str, F], None]) -> None:
    """The checks common to every record of `faces` (the record's), then `face` on each face."""
    _number("image_width", record["image_width"], 1)
    _number("image_height", record["image_height"], 1)
    if len(faces) > UINT16_MAX:
        raise _fail("faces", f"{len(faces)} faces, over {UINT16_MAX}")
    for i, item in enumerate(faces):
        where = f"faces[{i}]"
        geometry = item["geometry"]
        _number(f"{where}.geometry.index", geometry["index"], 0, UINT16_MAX)
        _number(f"{where}.geometry.x", geometry["x"], -math.inf)
        _number(f"{where}.geometry.y", geometry["y"], -math.inf)
        _number(f"{where}.geometry.width", geometry["width"], 0)
        _number(f"{where}.geometry.height", geometry["height"], 0)
        _number(f"{where}.geometry.score", geometry["score"], 0, 1)
        _length(f"{where}.geometry.landmarks", geometry["landmarks"], LANDMARK_VALUES)
        for n, value in enumerate(geometry["landmarks"]):
            _number(f"{where}.geometry.landmarks[{n}]", value, -math.inf)
        if not item["sample_id"]:
            raise _fail(f"{where}.sample_id", "is empty")
        face(where, item)


def _detected(estimate_liveness: bool) -> Callable[[str, DetectedFace], None]:
    size = LIVENESS_INPUT_BYTES if estimate_liveness else 0  # no crops when not estimated

    def check(where: str, face: DetectedFace) -> None:
        _length(f"{where}.liveness_input", face["liveness_input"], size)

    return check


def _live(where: str, face: LiveFace | DescribedFace) -> None:
    liveness = face["liveness"]
    if liveness is not None:  # not estimated
        _number(f"{where}.liveness.probability", liveness["probability"], 0, 1)
        _number(f"{where}.liveness.quality", liveness["quality"], 0, 1)


def _descriptor(where: str, version: int, vector: bytes) -> None:
    if version not in DESCRIPTOR_BYTES:
        raise _fail(f"{where} version", f"{version} is unknown (known: {sorted(DESCRIPTOR_BYTES)})")
    _length(f"{where} bytes", vector, DESCRIPTOR_BYTES[version])


def _described(version: int) -> Callable[[str, DescribedFace], None]:
    def check(where: str, face: DescribedFace) -> None:
        _live(where, face)
        _descriptor(f"{where}.descriptor", version, face["descriptor"])
        for n, other in enumerate(face["other_descriptors"]):
            _descriptor(f"{where}.other_descriptors[{n}]", other["version"], other["vector"])

    return check


def _detections(record: Detections) -> None:
    _faces(record, record["faces"], _detected(record["estimate_liveness"]))


def _liveness(record: LivenessResults) -> None:
    _faces(record, record["faces"], _live)


def _descriptors(record: Descriptors) -> None:
    _faces(record, record["faces"], _described(record["descriptor_version"]))


# By message type: each takes the records.py type of its name.
CHECKS: dict[str, Callable[[Any], None]] = {
    "Detections": _detections,
    "LivenessResults": _liveness,
    "Descriptors": _descriptors,
}


def check(name: str, record: Mapping[str, Any]) -> None:
    """Raises SchemaError(out_of_range) naming the first value of a `name` message out of range
    (its context aside: see check_context)."""
    CHECKS.get(name, lambda record: None)(record)
