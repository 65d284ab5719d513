"""Faces: created from an image (detected, aligned, described here) or from an event's face;
read and deleted. Faces live on the compacted faces topic that every matcher follows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from processors import align
from processors.errors import ProcessingError
from processors.image import decode_image, encode_jpeg
from processors.types import Detection, ImageBGR
from streams import topics
from streams.api import render
from streams.api.errors import ApiError, not_found
from streams.api.events import quote
from streams.api.lists import JSON_LIMIT, user_data
from streams.api.requests import (
    account_id,
    flag,
    image_and_fields,
    integer,
    json_body,
    number,
    strings,
)
from streams.api.services import Services

Record = dict[str, Any]
MAX_FACE_INDEX = 65535  # the tables' UInt16


@dataclass(frozen=True)
class FaceOptions:
    warped: bool = False
    multi_face_allowed: bool = False
    get_major_detection: bool = False
    score_threshold: float = 0.0
    pitch_threshold: float | None = None
    roll_threshold: float | None = None
    yaw_threshold: float | None = None

    @classmethod
    def from_request(cls, request: Request) -> FaceOptions:
        return cls(
            warped=flag(request, "warped"),
            multi_face_allowed=flag(request, "multi_face_allowed"),
            get_major_detection=flag(request, "get_major_detection"),
            score_threshold=number(request, "score_threshold", 0.0, 0, 1) or 0.0,
            pitch_threshold=number(request, "pitch_threshold", None, 0, 180),
            roll_threshold=number(request, "roll_threshold", None, 0, 180),
            yaw_threshold=number(request, "yaw_threshold", None, 0, 180),
        )

    def choose(self, found: list[Detection]) -> list[Detection]:
        """The detections that become faces, or why none does."""
        if not found:
            raise ProcessingError("no face found in the image", code="no_face")
        kept = [d for d in found if d.score >= self.score_threshold]
        if not kept:
            best = max(d.score for d in found)
            raise ProcessingError(
                f"no face scores {self.score_threshold} or more (best {best:.3f})",
                code="face_score_too_low",
            )
        kept = [d for d in kept if self._pose_ok(d)]
        if not kept:
            raise ProcessingError(
                "no face within the pitch/roll/yaw thresholds", code="bad_head_pose"
            )
        if len(kept) > 1 and not self.multi_face_allowed:
            if not self.get_major_detection:
                raise ProcessingError(
                    f"{len(kept)} faces found; set multi_face_allowed=1 or get_major_detection=1",
                    code="multiple_faces",
                )
            kept = [max(kept, key=lambda d: d.width * d.height)]  # the major face: the largest
        return kept

    def _pose_ok(self, detection: Detection) -> bool:
        yaw, pitch, roll = align.head_pose(detection.landmarks)
        limits = (
            (self.yaw_threshold, yaw),
            (self.pitch_threshold, pitch),
            (self.roll_threshold, roll),
        )
        return all(limit is None or abs(angle) <= limit for limit, angle in limits)


def samples_of(services: Services, data: bytes, options: FaceOptions) -> list[ImageBGR]:
    """The 250x250 aligned samples the image yields (it is one already when warped)."""
    limits = services.settings.image
    image = decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
    if options.warped:
        if image.shape[:2] != (align.SAMPLE_SIZE, align.SAMPLE_SIZE):
            raise ProcessingError(
                f"a warped image must be {align.SAMPLE_SIZE}x{align.SAMPLE_SIZE}, got "
                f"{image.shape[1]}x{image.shape[0]}",
                code="bad_warped_image",
            )
        return [image]
    found = options.choose(services.models.detector.detect(image))
    return [align.warp(image, d.landmarks) for d in found]


def describe(
    services: Services, data: bytes, options: FaceOptions
) -> list[tuple[bytes, np.ndarray]]:
    """(sample JPEG, descriptor) per face, with the default descriptor version."""
    samples = samples_of(services, data, options)
    version = services.settings.descriptor.default_face_descriptor_version
    vectors = services.models.extractor(version).extract(samples)
    return [(encode_jpeg(s), v) for s, v in zip(samples, vectors, strict=True)]


def face_record(
    account: str,
    lists: list[str],
    note: str | None,
    descriptors: list[Record],
    *,
    event_id: str | None,
    sample_id: str | None,
) -> Record:
    return {
        "face_id": str(uuid.uuid4()),
        "account_id": account,
        "list_ids": lists,
        "user_data": note,
        "event_id": event_id,
        "sample_id": sample_id,
        "created_at": datetime.now(UTC),
        "descriptors": descriptors,
    }


async def create_faces(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        face = await face_from_event(services, account, await json_body(request, JSON_LIMIT))
        return JSONResponse({"faces": [render.face(face)]}, status_code=201)
    options = FaceOptions.from_request(request)
    lists = request.query_params.getlist("list_id")
    check_lists(services, account, lists)
    note = user_data(request.query_params.get("user_data"))
    data, _ = await image_and_fields(request, services.settings.api.max_body_bytes)
    described = await run_in_threadpool(describe, services, data, options)
    version = services.settings.descriptor.default_face_descriptor_version
    created = []
    for sample, vector in described:
        sample_id = str(uuid.uuid4())
        await services.publish(
            topics.SAMPLES,
            sample_id,
            {
                "sample_id": sample_id,
                "account_id": account,
                "event_id": None,
                "face_index": 0,
                "created_at": datetime.now(UTC),
                "image": sample,
            },
        )
        descriptor = {"version": version, "vector": vector.astype("<f4").tobytes()}
        face = face_record(account, lists, note, [descriptor], event_id=None, sample_id=sample_id)
        await services.save_face(face["face_id"], face)
        created.append(render.face(face))
    return JSONResponse({"faces": created}, status_code=201)


def check_lists(services: Services, account: str, lists: list[str]) -> None:
    for list_id in lists:
        if services.directory.find_list(account, list_id) is None:
            raise not_found("list", list_id)


async def face_from_event(services: Services, account: str, body: Record) -> Record:
    event_id = body.get("event_id")
    if not isinstance(event_id, str):
        raise ApiError(400, "bad_face_source", "give event_id (string) and face_index (integer)")
    index = integer(body.get("face_index", 0), "face_index", 0, MAX_FACE_INDEX, "bad_face_source")
    lists = strings(body.get("list_ids") or [], "list_ids", "bad_list_ids")
    check_lists(services, account, lists)
    rows = await services.query(
        f"SELECT descriptor_version, descriptor, sample_id FROM "
        f"{services.settings.storage.database}.descriptors FINAL "
        f"WHERE account_id = {quote(account)} AND owner_kind = 'event' "
        f"AND owner_id = {quote(event_id)} AND face_index = {index} ORDER BY descriptor_version"
    )
    if not rows:
        raise ApiError(
            404, "event_face_not_found", f"event {event_id} has no face {index} in this account"
        )
    descriptors = [
        {
            "version": int(r["descriptor_version"]),
            "vector": np.asarray(r["descriptor"], dtype="<f4").tobytes(),
        }
        for r in rows
    ]
    face = face_record(
        account,
        lists,
        user_data(body.get("user_data")),
        descriptors,
        event_id=event_id,
        sample_id=rows[0]["sample_id"],
    )
    await services.save_face(face["face_id"], face)
    return face


async def get_face(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    face_id = request.path_params["face_id"]
    face = services.directory.find_face(account_id(request), face_id)
    if face is None:
        raise not_found("face", face_id)
    return JSONResponse(render.face(face))


async def delete_face(request: Request) -> Response:
    services: Services = request.app.state.services
    face_id = request.path_params["face_id"]
    if services.directory.find_face(account_id(request), face_id) is None:
        raise not_found("face", face_id)
    await services.save_face(face_id, None)
    return Response(status_code=204)


routes = [
    Route("/v1/faces", create_faces, methods=["POST"]),
    Route("/v1/faces/{face_id}", get_face, methods=["GET"]),
    Route("/v1/faces/{face_id}", delete_face, methods=["DELETE"]),
]
