"""Records as the topics carry them (Descriptors, Event, Face), for the stage and sink tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from schemas.records import Descriptors, Enrollment, FaceGeometry


def descriptor(seed: int) -> bytes:
    vector = np.random.default_rng(seed).standard_normal(128).astype("<f4")
    return (vector / np.linalg.norm(vector)).tobytes()


def event(account: str, *, faces: int = 1, event_id: str | None = None) -> dict[str, Any]:
    created = datetime.now(UTC).replace(microsecond=0)
    return {
        "context": {
            "event_id": event_id or str(uuid.uuid4()),
            "account_id": account,
            "created_at": created,
            "source": "cam-1",
            "list_ids": ["l1"],
            "enroll": None,
            "timings": {"detect": 5.0, "match": 0.1},
        },
        "finished_at": created + timedelta(milliseconds=250),
        "status": "ok",
        "error_code": None,
        "error_message": None,
        "image_width": 640,
        "image_height": 480,
        "descriptor_version": 1,
        "faces": [
            {
                "geometry": geometry(i, landmark=0.0),
                "sample_id": str(uuid.uuid4()),
                "liveness": {"probability": 0.9, "quality": 0.8},
                "descriptor": descriptor(i),
                "matches": [{"face_id": "f1", "similarity": 0.7, "user_data": "x"}],
                "enrolled_face_id": None,
            }
            for i in range(faces)
        ],
    }


def geometry(index: int, landmark: float) -> FaceGeometry:
    """A face's box, the same in every record; its ten landmark coordinates all `landmark`."""
    return {
        "index": index,
        "x": 1.0,
        "y": 2.0,
        "width": 50.0,
        "height": 60.0,
        "score": 0.9,
        "landmarks": [landmark] * 10,
    }


def face(account: str, face_id: str) -> dict[str, Any]:
    return {
        "face_id": face_id,
        "account_id": account,
        "list_ids": ["l1"],
        "user_data": "someone",
        "event_id": None,
        "sample_id": None,
        "created_at": datetime.now(UTC).replace(microsecond=0),
        "descriptors": [{"version": 1, "vector": descriptor(7)}],
    }


def descriptors(
    vectors: Sequence[np.ndarray],
    lists: list[str],
    account: str,
    enroll: Enrollment | None = None,
) -> Descriptors:
    return {
        "context": {
            "event_id": str(uuid.uuid4()),
            "account_id": account,
            "created_at": datetime.now(UTC).replace(microsecond=0),
            "source": None,
            "list_ids": lists,
            "enroll": enroll,
            "timings": {},
        },
        "image_width": 640,
        "image_height": 480,
        "descriptor_version": 1,
        "faces": [
            {
                "geometry": geometry(i, landmark=1.0),
                "sample_id": str(uuid.uuid4()),
                "liveness": {"probability": 0.9, "quality": 0.9, "quality_parts": {"blur": 0.9}},
                "attributes": None,
                "descriptor": vector.astype("<f4").tobytes(),
                "other_descriptors": [],
            }
            for i, vector in enumerate(vectors)
        ],
    }
