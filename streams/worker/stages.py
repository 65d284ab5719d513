"""The four pipeline stages as plain batch functions: records in, records out, no Kafka.

Agents (agents.py) feed them from topics; tests feed them from lists. A stage returns one
`Result` per input, in order: what to emit, or the error that rejected that one message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import cv2
import numpy as np

from processors import align, quality
from processors.errors import ImageError, ProcessingError
from processors.image import decode_image, encode_jpeg
from processors.types import Detection, FaceAttributes, ImageBGR, LivenessResult
from schemas.records import (
    Attributes,
    Context,
    DescribedFace,
    Descriptors,
    DetectedFace,
    Detections,
    Enrollment,
    Event,
    Face,
    FaceGeometry,
    Image,
    LiveFace,
    Liveness,
    LivenessResults,
    MatchedFace,
    Sample,
)
from streams.control.licence import pipeline_estimates
from streams.kafka import claim_check
from streams.kafka.gallery import GalleryIndex, SearchRequest
from streams.models.modelset import ModelSet
from streams.settings import (
    DetectionSettings,
    ImageSettings,
    LiveSettings,
    MatchSettings,
    Settings,
)

Output = Literal["detections", "samples", "liveness", "descriptors", "events", "faces"]
In = TypeVar("In", contravariant=True)  # the records.py type of a stage's source topic


@dataclass
class Emit:
    output: Output
    key: str | None
    value: Mapping[str, Any]  # the output topic's record; its contract checks it at encode


@dataclass
class Result:
    emits: list[Emit] = field(default_factory=list)
    error: ProcessingError | None = None


class Stage(Protocol[In]):
    name: str

    def run(self, records: Sequence[In]) -> list[Result]: ...


def now_utc() -> datetime:
    return datetime.now(UTC)


def _timed(context: Context, stage: str, started: float, share: int = 1) -> Context:
    timings = dict(context["timings"])
    timings[stage] = (time.perf_counter() - started) * 1000.0 / max(share, 1)
    return {**context, "timings": timings}


def _geometry(index: int, d: Detection) -> FaceGeometry:
    return {
        "index": index,
        "x": d.x,
        "y": d.y,
        "width": d.width,
        "height": d.height,
        "score": d.score,
        "landmarks": d.landmarks.reshape(-1).tolist(),
    }


def read_image_bytes(image: Image, limits: ImageSettings) -> bytes:
    """Inline bytes, or the claim-checked file the producer stored for the message's account."""
    if image["data"] is not None:
        return image["data"]
    ref = image["data_ref"]
    if ref is None:
        raise ImageError("the message has neither image bytes nor a reference", code="empty_image")
    return claim_check.read(
        ref,
        folder=limits.claim_check_dir,
        account_id=image["context"]["account_id"],
        max_bytes=limits.max_bytes,
    )


def select_faces(
    found: list[Detection], rules: DetectionSettings, enroll: bool
) -> list[tuple[int, Detection]]:
    """The faces an image goes on with (index in the detector output, detection), or why none."""
    if not found:
        raise ProcessingError("no face found in the image", code="no_face")
    big = [(i, d) for i, d in enumerate(found) if min(d.width, d.height) >= rules.min_face_size]
    if not big:
        largest = max(min(d.width, d.height) for d in found)
        raise ProcessingError(
            f"the largest face is {largest:.0f} px, under the {rules.min_face_size} px minimum",
            code="face_too_small",
        )
    if len(big) > rules.max_faces:
        raise ProcessingError(
            f"{len(big)} faces found, more than the {rules.max_faces} allowed",
            code="too_many_faces",
        )
    if enroll:
        # An enrollment makes one known face: the largest one in the photo.
        return [max(big, key=lambda item: item[1].width * item[1].height)]
    return big


# Ids made for a face of an event derive from the event: a redelivered image replaces its
# samples and enrolled faces (and their descriptor rows), never adds more.
DERIVED_NAMESPACE = uuid.UUID("8f6d3c1e-2b4a-5e7f-9a0b-1c2d3e4f5a6b")


def derived_id(kind: Literal["sample", "face"], event_id: str, face_index: int) -> str:
    name = f"{event_id}/{face_index}" if kind == "sample" else f"{kind}/{event_id}/{face_index}"
    return str(uuid.uuid5(DERIVED_NAMESPACE, name))


class DetectStage:
    """Decodes, detects, applies the face-count and size rules, cuts samples and liveness input."""

    name = "detect"

    def __init__(self, models: ModelSet, live: LiveSettings) -> None:
        self.models = models
        self.live = live

    def run(self, records: Sequence[Image]) -> list[Result]:
        settings = self.live.current  # one batch, one version of the settings
        return [self._one(record, settings) for record in records]

    def _one(self, record: Image, settings: Settings) -> Result:
        started = time.perf_counter()
        limits = settings.image
        try:
            data = read_image_bytes(record, limits)
            image = decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
            enroll = record["context"]["enroll"] is not None
            estimate_liveness = pipeline_estimates(record["estimate_liveness"], settings)
            faces = select_faces(self.models.detector.detect(image), settings.detection, enroll)
            measured = [quality.estimate(image, d) for _, d in faces]
            minimum = max(record["min_quality"] or 0.0, settings.detection.min_quality)
            kept_at = quality.require(measured, minimum)
            asked = record["estimate_basic_attributes"]
            attributes = (
                self._attributes(image, [faces[at][1] for at in kept_at])
                if (settings.attributes.estimate if asked is None else asked)
                else [None] * len(kept_at)
            )
        except ProcessingError as error:
            return Result(error=error)
        context = record["context"]
        detected: list[DetectedFace] = []
        samples: list[Emit] = []
        for at, face_attributes in zip(kept_at, attributes, strict=True):
            (index, detection), face_quality = faces[at], measured[at]
            sample_id = derived_id("sample", context["event_id"], index)
            sample = encode_jpeg(align.warp(image, detection.landmarks))
            crops = (
                np.ascontiguousarray(self.models.liveness.crops(image, detection), np.uint8)
                if estimate_liveness
                else np.empty(0, np.uint8)
            )
            detected.append(
                {
                    "geometry": _geometry(index, detection),
                    "sample_id": sample_id,
                    "sample": sample,
                    "liveness_input": crops.tobytes(),
                    "quality_parts": face_quality.parts(),
                    "attributes": face_attributes,
                }
            )
            kept: Sample = {
                "sample_id": sample_id,
                "account_id": context["account_id"],
                "event_id": context["event_id"],
                "face_index": index,
                "created_at": now_utc(),
                "image": sample,
            }
            samples.append(Emit("samples", sample_id, kept))
        height, width = image.shape[:2]
        out: Detections = {
            "context": _timed(context, self.name, started),
            "image_width": width,
            "image_height": height,
            "faces": detected,
            "estimate_liveness": estimate_liveness,
        }
        return Result([Emit("detections", context["event_id"], out), *samples])

    def _attributes(self, image: ImageBGR, found: list[Detection]) -> list[Attributes | None]:
        """Each face's basic attributes, the faces of the image in one batch."""
        estimator = self.models.attributes
        estimated = estimator.estimate([estimator.crop(image, d) for d in found]) if found else []
        return [attributes_record(a) for a in estimated]


def attributes_record(estimated: FaceAttributes) -> Attributes:
    """The estimator's attributes of a face as the topics carry them (events, faces)."""
    return {
        "age": estimated.age,
        "gender": estimated.gender,
        "gender_probability": estimated.gender_probability,
        "expressions": estimated.expressions,
    }


class LivenessStage:
    """Runs the liveness models over every face of the batch in one call."""

    name = "liveness"

    def __init__(self, models: ModelSet) -> None:
        self.models = models

    def run(self, records: Sequence[Detections]) -> list[Result]:
        started = time.perf_counter()
        estimated = [face for r in records if r["estimate_liveness"] for face in r["faces"]]
        crops = [
            np.frombuffer(face["liveness_input"], dtype=np.uint8).reshape(2, 80, 80, 3)
            for face in estimated
        ]
        parts = [face["quality_parts"] for face in estimated]
        # Parts are empty in detections from before them: quality 0, not measured.
        qualities = [min(p.values(), default=0.0) for p in parts]
        estimates = iter(self.models.liveness.estimate(crops, qualities) if crops else [])
        measured = iter(parts)
        results = []
        for record in records:
            faces: list[LiveFace] = [
                {
                    "geometry": face["geometry"],
                    "sample_id": face["sample_id"],
                    "sample": face["sample"],
                    "liveness": (
                        _liveness(next(estimates), next(measured))
                        if record["estimate_liveness"]
                        else None
                    ),
                    "attributes": face["attributes"],
                }
                for face in record["faces"]
            ]
            out: LivenessResults = {
                "context": _timed(record["context"], self.name, started, len(records)),
                "image_width": record["image_width"],
                "image_height": record["image_height"],
                "faces": faces,
            }
            results.append(Result([Emit("liveness", record["context"]["event_id"], out)]))
        return results


def _liveness(result: LivenessResult, parts: dict[str, float]) -> Liveness:
    return {"probability": result.probability, "quality": result.quality, "quality_parts": parts}


def decode_sample(data: bytes) -> np.ndarray:
    if not data:  # imdecode raises on an empty buffer instead of returning None
        raise ImageError("face sample is empty", code="bad_sample")
    sample = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if sample is None or sample.shape[:2] != (align.SAMPLE_SIZE, align.SAMPLE_SIZE):
        raise ImageError("face sample is not a decodable 250x250 image", code="bad_sample")
    return sample


class ExtractStage:
    """Extracts descriptors of the configured version for every face of the batch at once."""

    name = "extract"

    def __init__(self, models: ModelSet, versions: Callable[[], list[int]]) -> None:
        self.models = models
        self.versions = versions  # the default first, then those extracted beside it

    def run(self, records: Sequence[LivenessResults]) -> list[Result]:
        started = time.perf_counter()
        version, *others = self.versions()
        samples = [decode_sample(f["sample"]) for record in records for f in record["faces"]]
        extracted: dict[int, Iterator[np.ndarray]] = {
            v: iter(self.models.extractor(v).extract(samples) if samples else [])
            for v in (version, *others)
        }
        results = []
        for record in records:
            faces: list[DescribedFace] = [
                {
                    "geometry": face["geometry"],
                    "sample_id": face["sample_id"],
                    "liveness": face["liveness"],
                    "attributes": face["attributes"],
                    "descriptor": _bytes(next(extracted[version])),
                    "other_descriptors": [
                        {"version": v, "vector": _bytes(next(extracted[v]))} for v in others
                    ],
                }
                for face in record["faces"]
            ]
            out: Descriptors = {
                "context": _timed(record["context"], self.name, started, len(records)),
                "image_width": record["image_width"],
                "image_height": record["image_height"],
                "descriptor_version": version,
                "faces": faces,
            }
            results.append(Result([Emit("descriptors", record["context"]["event_id"], out)]))
        return results


def _bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def extraction_versions(live: LiveSettings, gallery: GalleryIndex) -> Callable[[], list[int]]:
    """The versions to extract, the default first: also those that known faces lacking the
    default still have (so they stay matchable until re-extracted), and `also_extract`."""
    cache: dict[tuple[int, int, tuple[int, ...]], list[int]] = {}

    def versions() -> list[int]:
        descriptor = live.current.descriptor
        default = descriptor.default_face_descriptor_version
        key = (gallery.changes, default, tuple(descriptor.also_extract))
        if key not in cache:
            extra = gallery.versions_lacking(default) | set(descriptor.also_extract)
            cache.clear()
            cache[key] = [default, *sorted(extra - {default})]
        return cache[key]

    return versions


def _vectors(record: Descriptors, face: DescribedFace) -> dict[int, bytes]:
    """The face's descriptors by version, the event's own version first."""
    return {record["descriptor_version"]: face["descriptor"]} | {
        d["version"]: d["vector"] for d in face["other_descriptors"]
    }


class MatchStage:
    """Matches the faces of a batch's events against their lists, all in one gallery search, or
    enrolls them; emits each final event."""

    name = "match"

    def __init__(self, gallery: GalleryIndex, live: LiveSettings) -> None:
        self.gallery = gallery
        self.live = live

    def run(self, records: Sequence[Descriptors]) -> list[Result]:
        match = self.live.current.match
        results: list[Result] = []
        waiting: list[Descriptors] = []  # events to match, searched together
        for record in records:
            if record["context"]["enroll"] is None:
                waiting.append(record)
                continue
            # Searched before the enrollment changes the gallery; the events after it see it,
            # as when each event of the batch runs in turn.
            results += self._matched(waiting, match)
            waiting = []
            results.append(self._enrolled(record, record["context"]["enroll"]))
        return results + self._matched(waiting, match)

    def _matched(self, records: Sequence[Descriptors], match: MatchSettings) -> list[Result]:
        """The events of `records`, every face of theirs searched in one call."""
        started = time.perf_counter()
        asked = [self._requests(record, match) for record in records]
        requests = [request for face_requests in asked for request in face_requests]
        found = iter(self.gallery.search_batch(requests) if requests else [])
        results = []
        for record, face_requests in zip(records, asked, strict=True):
            faces: list[MatchedFace] = [
                {**face, "matches": [], "enrolled_face_id": None, "matched_version": None}
                for face in record["faces"]
            ]
            # No requests (the event names no lists), or one for each face.
            for face, request in zip(faces, face_requests, strict=False):
                face["matches"], face["matched_version"] = next(found), request.version
            event = self._event(record, faces, started, len(records))
            results.append(Result([Emit("events", record["context"]["event_id"], event)]))
        return results

    def _requests(self, record: Descriptors, match: MatchSettings) -> list[SearchRequest]:
        """One search per face against the event's lists, in the version serving its account."""
        context = record["context"]
        if not context["list_ids"]:
            return []
        requests = []
        for face in record["faces"]:
            vectors = _vectors(record, face)
            serving = self.gallery.serving_version(context["account_id"], list(vectors))
            requests.append(
                SearchRequest(
                    context["account_id"],
                    serving,
                    np.frombuffer(vectors[serving], dtype="<f4"),
                    list_ids=tuple(context["list_ids"]),
                    limit=match.limit,
                    threshold=match.threshold(serving),
                )
            )
        return requests

    def _enrolled(self, record: Descriptors, enrollment: Enrollment) -> Result:
        started = time.perf_counter()
        context = record["context"]
        refused = self._refused_enrollment(enrollment, context["account_id"])
        if refused is not None:
            return Result(error=refused)
        emits: list[Emit] = []
        faces: list[MatchedFace] = []
        for face in record["faces"]:
            vectors = _vectors(record, face)
            serving = self.gallery.serving_version(context["account_id"], list(vectors))
            face_record = self._enroll(context, enrollment, face, vectors)
            enrolled = face_record["face_id"]
            self.gallery.apply(enrolled, face_record)
            emits.append(Emit("faces", enrolled, face_record))
            faces.append(
                {
                    **face,
                    "matches": [],
                    "enrolled_face_id": enrolled,
                    "matched_version": serving if context["list_ids"] else None,
                }
            )
        event = self._event(record, faces, started)
        return Result([*emits, Emit("events", context["event_id"], event)])

    def _event(
        self, record: Descriptors, faces: list[MatchedFace], started: float, share: int = 1
    ) -> Event:
        return {
            "context": _timed(record["context"], self.name, started, share),
            "finished_at": now_utc(),
            "status": "ok",
            "error_code": None,
            "error_message": None,
            "image_width": record["image_width"],
            "image_height": record["image_height"],
            "descriptor_version": record["descriptor_version"],
            "faces": faces,
        }

    def _refused_enrollment(self, enrollment: Enrollment, account: str) -> ProcessingError | None:
        """A face id or list id of another account is not the sender's to use: refused, nothing
        changes. A list id no account owns yet stays usable, for the sender's account only."""
        owners = {
            "face_id": enrollment["face_id"] and self.gallery.face_owner(enrollment["face_id"]),
            "list_id": self.gallery.list_owner(enrollment["list_id"]),
        }
        for name, owner in owners.items():
            if owner and owner != account:
                return ProcessingError(
                    f"enroll.{name} belongs to another account", code="forbidden"
                )
        return None

    @staticmethod
    def _enroll(
        context: Context, enrollment: Enrollment, face: DescribedFace, vectors: dict[int, bytes]
    ) -> Face:
        return {
            "face_id": enrollment["face_id"]
            or derived_id("face", context["event_id"], face["geometry"]["index"]),
            "account_id": context["account_id"],
            "list_ids": [enrollment["list_id"]],
            "user_data": enrollment["user_data"],
            "event_id": context["event_id"],
            "sample_id": face["sample_id"],
            "created_at": now_utc(),
            "descriptors": [{"version": v, "vector": vector} for v, vector in vectors.items()],
            "attributes": face["attributes"],
            "avatar_sample_id": None,
        }


def error_event(context: Context, error: ProcessingError) -> Event:
    return {
        "context": context,
        "finished_at": now_utc(),
        "status": "error",
        "error_code": error.code,
        "error_message": error.message,
        "image_width": None,
        "image_height": None,
        "descriptor_version": None,
        "faces": [],
    }
