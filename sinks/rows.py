"""Maps decoded Event and Face messages (see schemas/) to ClickHouse rows."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

Record = dict[str, Any]


def descriptor_values(vector: bytes) -> list[float]:
    values: list[float] = np.frombuffer(vector, dtype="<f4").tolist()
    return values


def descriptor_row(
    account_id: str,
    owner_kind: str,
    owner_id: str,
    face_index: int,
    sample_id: str | None,
    version: int,
    vector: bytes,
    created_at: datetime,
    now: datetime,
) -> Record:
    """A row of the `descriptors` table: one descriptor of one face of an event or a known face."""
    return {
        "account_id": account_id,
        "owner_kind": owner_kind,
        "owner_id": owner_id,
        "face_index": face_index,
        "sample_id": sample_id,
        "descriptor_version": version,
        "descriptor": descriptor_values(vector),
        "created_at": created_at,
        "inserted_at": now,
    }


def _attribute(face: Record, name: str, absent: Any) -> Any:
    attributes = face.get("attributes")
    return absent if attributes is None else attributes[name]


def _liveness(face: Record, measure: str) -> float:
    liveness = face["liveness"]
    return math.nan if liveness is None else float(liveness[measure])


def event_rows(event: Record, now: datetime) -> tuple[Record, list[Record]]:
    """One `events` row and the event faces' `descriptors` rows."""
    context = event["context"]
    faces = event["faces"]
    best = [face["matches"][0] if face["matches"] else None for face in faces]
    created: datetime = context["created_at"]
    finished: datetime = event["finished_at"]
    row = {
        "event_id": context["event_id"],
        "account_id": context["account_id"],
        "source": context["source"],
        "created_at": created,
        "finished_at": finished,
        "latency_ms": (finished - created).total_seconds() * 1000.0,
        "status": event["status"],
        "error_code": event["error_code"],
        "error_message": event["error_message"],
        "list_ids": context["list_ids"],
        "image_width": event["image_width"],
        "image_height": event["image_height"],
        "descriptor_version": event["descriptor_version"],
        "face_count": len(faces),
        "face_indexes": [face["geometry"]["index"] for face in faces],
        "face_sample_ids": [face["sample_id"] for face in faces],
        "face_boxes": [
            [g["x"], g["y"], g["width"], g["height"]] for g in (f["geometry"] for f in faces)
        ],
        "face_scores": [face["geometry"]["score"] for face in faces],
        # NaN: not estimated (no liveness asked for, or none licensed); it passes no filter.
        "liveness_probability": [_liveness(face, "probability") for face in faces],
        "liveness_quality": [_liveness(face, "quality") for face in faces],
        # NaN ages, empty genders and {} where not estimated.
        "face_ages": [_attribute(face, "age", math.nan) for face in faces],
        "face_genders": [_attribute(face, "gender", "") for face in faces],
        "face_gender_probabilities": [
            _attribute(face, "gender_probability", math.nan) for face in faces
        ],
        "face_expressions_json": json.dumps(
            [_attribute(face, "expressions", {}) for face in faces]
        ),
        "best_match_face_id": [m["face_id"] if m else "" for m in best],
        "best_match_similarity": [m["similarity"] if m else 0.0 for m in best],
        "enrolled_face_ids": [f["enrolled_face_id"] for f in faces if f["enrolled_face_id"]],
        "matches_json": json.dumps([face["matches"] for face in faces]),
        "stage_names": list(context["timings"]),
        "stage_ms": list(context["timings"].values()),
        "inserted_at": now,
    }
    descriptors = [
        descriptor_row(
            context["account_id"],
            "event",
            context["event_id"],
            face["geometry"]["index"],
            face["sample_id"],
            event["descriptor_version"],
            face["descriptor"],
            created,
            now,
        )
        for face in faces
    ]
    return row, descriptors


def face_rows(face_id: str, face: Record | None, now: datetime) -> tuple[Record, list[Record]]:
    """A `faces` row (deleted=1 for a tombstone) and its `descriptors` rows."""
    if face is None:
        tombstone: Record = {
            "face_id": face_id,
            "account_id": "",
            "list_ids": [],
            "user_data": None,
            "event_id": None,
            "sample_id": None,
            "attributes_json": "",
            "created_at": now,
            "deleted": 1,
            "updated_at": now,
        }
        return tombstone, []
    attributes = face.get("attributes")  # None or absent: not estimated
    row = {
        "face_id": face_id,
        "account_id": face["account_id"],
        "list_ids": face["list_ids"],
        "user_data": face["user_data"],
        "event_id": face["event_id"],
        "sample_id": face["sample_id"],
        "attributes_json": "" if attributes is None else json.dumps(attributes),
        "created_at": face["created_at"],
        "deleted": 0,
        "updated_at": now,
    }
    descriptors = [
        descriptor_row(
            face["account_id"],
            "face",
            face_id,
            0,
            face["sample_id"],
            d["version"],
            d["vector"],
            face["created_at"],
            now,
        )
        for d in face["descriptors"]
    ]
    return row, descriptors


def reextraction_row(record: Record, now: datetime) -> Record | None:
    """The descriptors row of a re-extracted event sample (face samples arrive as faces)."""
    if record["event_id"] is None or record["descriptor"] is None:
        return None
    return descriptor_row(
        record["account_id"],
        "event",
        record["event_id"],
        record["face_index"],
        record["sample_id"],
        record["version"],
        record["descriptor"],
        record["processed_at"],
        now,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def sample_row(sample_id: str, sample: Record | None, now: datetime) -> Record:
    """A `samples` row: the JPEG as base64 text; deleted=1 for a tombstone."""
    if sample is None:
        return {
            "sample_id": sample_id,
            "account_id": "",
            "event_id": None,
            "face_index": 0,
            "image_base64": "",
            "created_at": now,
            "deleted": 1,
            "updated_at": now,
        }
    return {
        "sample_id": sample_id,
        "account_id": sample["account_id"],
        "event_id": sample["event_id"],
        "face_index": sample["face_index"],
        "image_base64": base64.b64encode(sample["image"]).decode(),
        "created_at": sample["created_at"],
        "deleted": 0,
        "updated_at": now,
    }
