"""The JSON shapes of the API (see openapi.yml), from topic records and ClickHouse rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]


def iso(value: datetime) -> str:
    if value.tzinfo is None:  # ClickHouse DateTime('UTC') comes back naive
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _box(x: float, y: float, width: float, height: float, score: float) -> Record:
    return {"x": x, "y": y, "width": width, "height": height, "score": score}


def event_from_record(event: Record) -> Record:
    """An Event message (events topic) as the API shows it."""
    context = event["context"]
    return {
        "event_id": context["event_id"],
        "account_id": context["account_id"],
        "source": context["source"],
        "created_at": iso(context["created_at"]),
        "finished_at": iso(event["finished_at"]),
        "status": event["status"],
        "error_code": event["error_code"],
        "error_message": event["error_message"],
        "list_ids": context["list_ids"],
        "descriptor_version": event["descriptor_version"],
        "faces": [
            {
                "index": f["geometry"]["index"],
                "box": _box(*(f["geometry"][k] for k in ("x", "y", "width", "height", "score"))),
                "sample_id": f["sample_id"],
                "liveness": f["liveness"],
                "matches": f["matches"],
            }
            for f in event["faces"]
        ],
    }


EVENT_COLUMNS = (
    "event_id, account_id, source, created_at, finished_at, status, error_code, error_message, "
    "list_ids, descriptor_version, face_indexes, face_sample_ids, face_boxes, face_scores, "
    "liveness_probability, liveness_quality, matches_json"
)


def event_from_row(row: Record) -> Record:
    """A row of the events table (EVENT_COLUMNS) as the API shows it."""
    matches = json.loads(row["matches_json"])
    return {
        "event_id": row["event_id"],
        "account_id": row["account_id"],
        "source": row["source"],
        "created_at": iso(row["created_at"]),
        "finished_at": iso(row["finished_at"]),
        "status": row["status"],
        "error_code": row["error_code"],
        "error_message": row["error_message"],
        "list_ids": list(row["list_ids"]),
        "descriptor_version": row["descriptor_version"],
        "faces": [
            {
                "index": index,
                "box": _box(box[0], box[1], box[2], box[3], score),
                "sample_id": sample_id,
                "liveness": {"probability": probability, "quality": quality},
                "matches": face_matches,
            }
            for index, sample_id, box, score, probability, quality, face_matches in zip(
                row["face_indexes"],
                row["face_sample_ids"],
                row["face_boxes"],
                row["face_scores"],
                row["liveness_probability"],
                row["liveness_quality"],
                matches,
                strict=True,
            )
        ],
    }


def face(record: Record) -> Record:
    return {
        "face_id": record["face_id"],
        "account_id": record["account_id"],
        "user_data": record["user_data"],
        "list_ids": record["list_ids"],
        "event_id": record["event_id"],
        "sample_id": record["sample_id"],
        "created_at": iso(record["created_at"]),
        "descriptor_versions": sorted(d["version"] for d in record["descriptors"]),
    }


def face_list(record: Record, face_count: int) -> Record:
    return {
        "list_id": record["list_id"],
        "user_data": record["user_data"],
        "created_at": iso(record["created_at"]),
        "face_count": face_count,
    }
