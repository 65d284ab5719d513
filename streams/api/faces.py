"""Faces: created from an image (detected, aligned, described here) or from an event's face;
read and deleted. Faces live on the compacted faces topic that every matcher follows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from processors import align, pose
from processors import quality as face_quality
from processors.errors import ProcessingError
from processors.image import decode_image, encode_jpeg
from processors.pose import HeadPose, PoseOf
from processors.types import Detection, ImageBGR
from schemas import records
from streams.api import render
from streams.api.errors import ApiError, not_found
from streams.api.lists import JSON_LIMIT
from streams.api.requests import account_id, image_and_fields, json_model, query
from streams.api.services import Services
from streams.api.shapes import Face, FaceFromEvent, Faces, FacesQuery
from streams.api.spec import Operation
from streams.kafka import topics


def choose(
    options: FacesQuery,
    image: ImageBGR,
    found: list[Detection],
    min_quality: float,
    pose_of: PoseOf = pose.five_point,
) -> list[Detection]:
    """The detections that become faces under the options, or why none does.
    `score_threshold` is folder_uploader's "descriptor quality score threshold": the face's
    quality (processors.quality), as is the deployment's `detection.min_quality`; the higher
    of the two rules, a face under it is `low_quality`."""
    if not found:
        raise ProcessingError("no face found in the image", code="no_face")
    minimum = max(options.score_threshold, min_quality)
    measured = [face_quality.estimate(image, d) for d in found]
    kept = [found[i] for i in face_quality.require(measured, minimum)]
    if (options.yaw_threshold, options.pitch_threshold, options.roll_threshold) != (None,) * 3:
        kept = [d for d in kept if _pose_ok(options, pose_of(d))]
    if not kept:
        raise ProcessingError("no face within the pitch/roll/yaw thresholds", code="bad_head_pose")
    if len(kept) > 1 and not options.multi_face_allowed:
        if not options.get_major_detection:
            raise ProcessingError(
                f"{len(kept)} faces found; set multi_face_allowed=1 or get_major_detection=1",
                code="multiple_faces",
            )
        kept = [max(kept, key=lambda d: d.width * d.height)]  # the major face: the largest
    return kept


def _pose_ok(options: FacesQuery, angles: HeadPose) -> bool:
    limits = (
        (options.yaw_threshold, angles.yaw),
        (options.pitch_threshold, angles.pitch),
        (options.roll_threshold, angles.roll),
    )
    return all(limit is None or abs(angle) <= limit for limit, angle in limits)


def samples_of(services: Services, data: bytes, options: FacesQuery) -> list[ImageBGR]:
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
    found = services.models.detector.detect(image)
    found = choose(
        options,
        image,
        found,
        services.settings.detection.min_quality,
        lambda d: services.models.pose.estimate(image, d),
    )
    return [align.warp(image, d.landmarks) for d in found]


def describe(
    services: Services, data: bytes, options: FacesQuery
) -> list[tuple[bytes, np.ndarray | None]]:
    """(sample JPEG, descriptor) per face, with the default descriptor version (None when the
    options ask for no descriptor)."""
    samples = samples_of(services, data, options)
    if not options.descriptor:
        return [(encode_jpeg(s), None) for s in samples]
    version = services.settings.descriptor.default_face_descriptor_version
    vectors = services.models.extractor(version).extract(samples)
    return [(encode_jpeg(s), v) for s, v in zip(samples, vectors, strict=True)]


def face_record(
    account: str,
    lists: list[str],
    note: str | None,
    descriptors: list[records.VersionedDescriptor],
    *,
    event_id: str | None,
    sample_id: str | None,
) -> records.Face:
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
    """With an image body (raw or multipart field `image`) every face that passes the options
    becomes a face (one unless `multi_face_allowed=1`). With a JSON body
    `{"event_id", "face_index"}` the face takes that event face's descriptors and sample (the
    query parameters are then not used)."""
    services: Services = request.app.state.services
    account = account_id(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = await json_model(request, FaceFromEvent, JSON_LIMIT)
        face = await face_from_event(services, account, body)
        return render.respond(Faces(faces=(render.face(face),)), 201)
    given = query(request, FacesQuery)
    lists = given.list_id
    check_lists(services, account, lists)
    note = given.user_data
    data, _ = await image_and_fields(request, services.settings.api.max_body_bytes)
    described = await run_in_threadpool(describe, services, data, given)
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
        descriptors: list[records.VersionedDescriptor] = []
        if vector is not None:
            descriptors.append({"version": version, "vector": vector.astype("<f4").tobytes()})
        face = face_record(account, lists, note, descriptors, event_id=None, sample_id=sample_id)
        await services.save_face(face["face_id"], face)
        created.append(render.face(face))
    return render.respond(Faces(faces=tuple(created)), 201)


def check_lists(services: Services, account: str, lists: list[str]) -> None:
    for list_id in lists:
        if services.directory.find_list(account, list_id) is None:
            raise not_found("list", list_id)


async def face_from_event(services: Services, account: str, body: FaceFromEvent) -> records.Face:
    event_id, index, lists = body.event_id, body.face_index, body.list_ids or []
    check_lists(services, account, lists)
    rows = await services.query(
        f"SELECT descriptor_version, descriptor, sample_id FROM "
        f"{services.settings.storage.database}.descriptors FINAL "
        "WHERE account_id = %(account)s AND owner_kind = 'event' AND owner_id = %(event_id)s "
        "AND face_index = %(index)s ORDER BY descriptor_version",
        {"account": account, "event_id": event_id, "index": index},
    )
    if not rows:
        raise ApiError(
            404, "event_face_not_found", f"event {event_id} has no face {index} in this account"
        )
    descriptors: list[records.VersionedDescriptor] = [
        {
            "version": int(r["descriptor_version"]),
            "vector": np.asarray(r["descriptor"], dtype="<f4").tobytes(),
        }
        for r in rows
    ]
    face = face_record(
        account,
        lists,
        body.user_data,
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
    return render.respond(render.face(face))


async def delete_face(request: Request) -> Response:
    services: Services = request.app.state.services
    face_id = request.path_params["face_id"]
    if services.directory.find_face(account_id(request), face_id) is None:
        raise not_found("face", face_id)
    await services.save_face(face_id, None)
    return Response(status_code=204)


operations = [
    Operation(
        "POST",
        "/v1/faces",
        create_faces,
        "Create faces from an image, or a face from an event's face",
        {201: Faces},
        {404: "list_not_found or event_face_not_found", 503: "storage_not_shared (event faces)"},
        query=FacesQuery,
        body=FaceFromEvent,
        image=True,
    ),
    Operation(
        "GET", "/v1/faces/{face_id}", get_face, "One face", {200: Face}, {404: "face_not_found"}
    ),
    Operation(
        "DELETE",
        "/v1/faces/{face_id}",
        delete_face,
        "Delete a face",
        {204: None},
        {404: "face_not_found"},
    ),
]
