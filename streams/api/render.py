"""The API's answers (streams.api.shapes) from topic records and ClickHouse rows."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from processors.types import FaceAttributes
from schemas import records
from streams.api.shapes import BasicAttributes, Event, Face, FaceList

Record = dict[str, Any]


def utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # ClickHouse's naive


def _box(x: float, y: float, width: float, height: float, score: float) -> Record:
    return {"x": x, "y": y, "width": width, "height": height, "score": score}


def _event(context: Record, outcome: Record, faces: list[Record]) -> Event:
    """An Event from the image's context and what the pipeline made of it (a message keeps them
    apart, a row holds both)."""
    return Event.model_validate(
        {
            "event_id": context["event_id"],
            "account_id": context["account_id"],
            "source": context["source"],
            "created_at": utc(context["created_at"]),
            "finished_at": utc(outcome["finished_at"]),
            "status": outcome["status"],
            "error_code": outcome["error_code"],
            "error_message": outcome["error_message"],
            "list_ids": list(context["list_ids"]),
            "descriptor_version": outcome["descriptor_version"],
            "faces": faces,
        }
    )


def event_from_record(event: Record) -> Event:
    """An Event message (events topic) as the API shows it."""
    faces = [
        {
            "index": f["geometry"]["index"],
            "box": _box(*(f["geometry"][k] for k in ("x", "y", "width", "height", "score"))),
            "sample_id": f["sample_id"],
            "liveness": f["liveness"],
            "basic_attributes": f.get("attributes"),
            "matches": f["matches"],
        }
        for f in event["faces"]
    ]
    return _event(event["context"], event, faces)


EVENT_COLUMNS = (
    "event_id, account_id, source, created_at, finished_at, status, error_code, error_message, "
    "list_ids, descriptor_version, face_indexes, face_sample_ids, face_boxes, face_scores, "
    "liveness_probability, liveness_quality, face_ages, face_genders, face_gender_probabilities, "
    "face_expressions_json, matches_json"
)


def _row_attributes(row: Record) -> list[Record | None]:
    """Each face's basic attributes from an events row; none in rows stored before them (empty
    arrays) or where not estimated (an empty gender)."""
    genders = row["face_genders"]
    if len(genders) != len(row["face_indexes"]):
        return [None] * len(row["face_indexes"])
    expressions = json.loads(row["face_expressions_json"] or "[]")
    return [
        None
        if not gender
        else {
            "age": age,
            "gender": gender,
            "gender_probability": probability,
            "expressions": scores,
        }
        for age, gender, probability, scores in zip(
            row["face_ages"], genders, row["face_gender_probabilities"], expressions, strict=True
        )
    ]


def event_from_row(row: Record) -> Event:
    """A row of the events table (EVENT_COLUMNS) as the API shows it."""
    faces = [
        {
            "index": index,
            "box": _box(box[0], box[1], box[2], box[3], score),
            "sample_id": sample_id,
            "liveness": None  # NaN (JSON: null): not estimated
            if probability is None or math.isnan(probability)
            else {"probability": probability, "quality": quality},
            "basic_attributes": attributes,
            "matches": face_matches,
        }
        for index, sample_id, box, score, probability, quality, attributes, face_matches in zip(
            row["face_indexes"],
            row["face_sample_ids"],
            row["face_boxes"],
            row["face_scores"],
            row["liveness_probability"],
            row["liveness_quality"],
            _row_attributes(row),
            json.loads(row["matches_json"]),
            strict=True,
        )
    ]
    return _event(row, row, faces)


def face(record: records.Face) -> Face:
    return Face.model_validate(
        {
            "face_id": record["face_id"],
            "account_id": record["account_id"],
            "user_data": record["user_data"],
            "list_ids": record["list_ids"],
            "event_id": record["event_id"],
            "sample_id": record["sample_id"],
            "created_at": utc(record["created_at"]),
            "descriptor_versions": sorted(d["version"] for d in record["descriptors"]),
            "basic_attributes": record["attributes"],
            "avatar_sample_id": record["avatar_sample_id"],
        }
    )


def basic_attributes(found: FaceAttributes) -> BasicAttributes:
    """The estimator's attributes of a face as the API shows them."""
    return BasicAttributes.model_validate(asdict(found))


def face_list(record: records.List, face_count: int) -> FaceList:
    return FaceList.model_validate(
        {
            "list_id": record["list_id"],
            "user_data": record["user_data"],
            "created_at": utc(record["created_at"]),
            "face_count": face_count,
        }
    )


def respond(shape: BaseModel, status: int = 200, *, exclude_none: bool = False) -> JSONResponse:
    """An answer serialised from its shape."""
    return JSONResponse(shape.model_dump(mode="json", exclude_none=exclude_none), status)
