"""Faces: created from an image (detected, aligned, described here) or from an event's face;
read and deleted. Faces live on the compacted faces topic that every matcher follows."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from processors import align, pose
from processors import quality as face_quality
from processors.errors import ProcessingError
from processors.extract_dlib import CHIP_SIZE, SAMPLE_TO_CHIP
from processors.image import decode_image, encode_jpeg
from processors.pose import HeadPose, PoseOf
from processors.types import Detection, ImageBGR
from schemas import records
from streams.api import render
from streams.api.descriptors import decode
from streams.api.errors import ApiError, not_found
from streams.api.lists import JSON_LIMIT
from streams.api.requests import account_id, image_and_fields, json_body, parse, query
from streams.api.samples import forget_samples, publish_sample
from streams.api.services import Services
from streams.api.shapes import Face, FaceFromDescriptors, FaceFromEvent, Faces, FacesQuery
from streams.api.spec import Operation
from streams.worker.stages import attributes_record


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


def _warped_face() -> Detection:
    """The face of a warped (sample) image: its points where the sample puts them, its box the
    square dlib's 150x150 chip takes from the sample. The johns are such chips (face-api.js's
    own outputs on whole chips are golden values of tests/unit/test_attributes.py); warped to
    samples, all 55 read male in this box (tests/unit/test_basic_attributes_api.py checks one)."""
    back = cv2.invertAffineTransform(SAMPLE_TO_CHIP)  # turns 0.3 degrees: the box ignores it
    side = CHIP_SIZE * math.hypot(back[0, 0], back[1, 0])
    return Detection(float(back[0, 2]), float(back[1, 2]), side, side, 1.0, align.SAMPLE_TEMPLATE)


WARPED_FACE = _warped_face()


class Described(NamedTuple):
    sample: bytes  # JPEG
    vector: np.ndarray | None  # None when the options ask for no descriptor
    attributes: records.Attributes | None  # None unless the options ask for them


def _faces_of(
    services: Services, data: bytes, options: FacesQuery
) -> tuple[ImageBGR, list[Detection]]:
    """The decoded image and its faces that pass the options; a warped image is one sample,
    its face WARPED_FACE."""
    limits = services.settings.image
    image = decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
    if options.warped:
        if image.shape[:2] != (align.SAMPLE_SIZE, align.SAMPLE_SIZE):
            raise ProcessingError(
                f"a warped image must be {align.SAMPLE_SIZE}x{align.SAMPLE_SIZE}, got "
                f"{image.shape[1]}x{image.shape[0]}",
                code="bad_warped_image",
            )
        return image, [WARPED_FACE]
    found = services.models.detector.detect(image)
    found = choose(
        options,
        image,
        found,
        services.settings.detection.min_quality,
        lambda d: services.models.pose.estimate(image, d),
    )
    return image, found


def describe(services: Services, data: bytes, options: FacesQuery) -> list[Described]:
    """Each face's 250x250 aligned sample (a warped image is one already), descriptor of the
    default version and basic attributes (estimated on the image, in the face's box)."""
    image, found = _faces_of(services, data, options)
    samples = [image] if options.warped else [align.warp(image, d.landmarks) for d in found]
    vectors: list[np.ndarray | None] = [None] * len(found)
    if options.descriptor:
        version = services.settings.descriptor.default_face_descriptor_version
        vectors = list(services.models.extractor(version).extract(samples))
    attributes: list[records.Attributes | None] = [None] * len(found)
    if options.basic_attr:
        estimator = services.models.attributes
        estimated = estimator.estimate([estimator.crop(image, d) for d in found])
        attributes = [attributes_record(a) for a in estimated]
    return [
        Described(encode_jpeg(s), v, a)
        for s, v, a in zip(samples, vectors, attributes, strict=True)
    ]


def face_record(
    account: str,
    lists: list[str],
    note: str | None,
    descriptors: list[records.VersionedDescriptor],
    *,
    event_id: str | None,
    sample_id: str | None,
    attributes: records.Attributes | None = None,
    avatar_sample_id: str | None = None,
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
        "attributes": attributes,
        "avatar_sample_id": avatar_sample_id,
    }


async def create_faces(request: Request) -> JSONResponse:
    """With an image body (raw or multipart field `image`) every face that passes the options
    becomes a face (one unless `multi_face_allowed=1`). With a JSON body
    `{"event_id", "face_index"}` the face takes that event face's descriptors and sample, and
    with `{"descriptors": [{"version", "vector"}]}` it is made of those descriptors (each
    checked for its version's size; the query parameters are then not used)."""
    services: Services = request.app.state.services
    account = account_id(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        value = await json_body(request, JSON_LIMIT)
        if "descriptors" in value:
            face = await face_from_descriptors(services, account, parse(FaceFromDescriptors, value))
        else:
            face = await face_from_event(services, account, parse(FaceFromEvent, value))
        return render.respond(Faces(faces=(render.face(face),)), 201)
    given = query(request, FacesQuery)
    lists = given.list_id
    check_lists(services, account, lists)
    note = given.user_data
    data, _ = await image_and_fields(request, services.settings.api.max_body_bytes)
    described = await run_in_threadpool(describe, services, data, given)
    version = services.settings.descriptor.default_face_descriptor_version
    created = []
    for sample, vector, attributes in described:
        sample_id = await publish_sample(services, account, sample)
        descriptors: list[records.VersionedDescriptor] = []
        if vector is not None:
            descriptors.append({"version": version, "vector": vector.astype("<f4").tobytes()})
        face = face_record(
            account,
            lists,
            note,
            descriptors,
            event_id=None,
            sample_id=sample_id,
            attributes=attributes,
            avatar_sample_id=sample_id if given.avatar else None,
        )
        await services.save_face(face["face_id"], face)
        created.append(render.face(face))
    return render.respond(Faces(faces=tuple(created)), 201)


def check_lists(services: Services, account: str, lists: list[str]) -> None:
    for list_id in lists:
        if services.directory.find_list(account, list_id) is None:
            raise not_found("list", list_id)


async def face_from_descriptors(
    services: Services, account: str, body: FaceFromDescriptors
) -> records.Face:
    lists = body.list_ids or []
    check_lists(services, account, lists)
    descriptors: list[records.VersionedDescriptor] = [
        {"version": d.version, "vector": decode(d.vector, d.version).astype("<f4").tobytes()}
        for d in body.descriptors
    ]
    face = face_record(account, lists, body.user_data, descriptors, event_id=None, sample_id=None)
    await services.save_face(face["face_id"], face)
    return face


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
    face = services.directory.find_face(account_id(request), face_id)
    if face is None:
        raise not_found("face", face_id)
    await services.save_face(face_id, None)
    await forget_samples(services, face)
    return Response(status_code=204)


operations = [
    Operation(
        "POST",
        "/v1/faces",
        create_faces,
        "Create faces from an image, or a face from an event's face or from descriptors",
        {201: Faces},
        {
            400: "bad_descriptor: a descriptor of an unknown version or the wrong size",
            404: "list_not_found or event_face_not_found",
            503: "storage_not_shared (event faces)",
        },
        query=FacesQuery,
        body=(FaceFromEvent, FaceFromDescriptors),
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
