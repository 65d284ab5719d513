"""Face samples and avatars: GET /v1/samples/{id}, GET and PUT /v1/faces/{id}/avatar.

Samples travel on the compacted samples topic (where a re-extraction reads them); the store
stage keeps each in ClickHouse's `samples` table too, so a request reads one at once. A face's
avatar is one of the account's samples: the face's own (POST /v1/faces?avatar=1, the
uploader's --avatar 1) or an image set later, kept as a sample of its own. Deleting a face
deletes the samples only it used; a sample an event holds stays with the event.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from processors.image import decode_image, encode_jpeg
from schemas import records
from streams.api import render
from streams.api.errors import ApiError, not_found
from streams.api.requests import account_id, image_and_fields
from streams.api.services import Services
from streams.api.shapes import Face
from streams.api.spec import Media, Operation
from streams.kafka import topics

JPEG = Media("image/jpeg", {"type": "string", "format": "binary"})
STORAGE = "storage_not_shared: samples are in the worker's embedded chDB"


async def publish_sample(
    services: Services, account: str, jpeg: bytes, event_id: str | None = None
) -> str:
    """A new sample of the account on the samples topic, acknowledged; its id."""
    sample_id = str(uuid.uuid4())
    record: records.Sample = {
        "sample_id": sample_id,
        "account_id": account,
        "event_id": event_id,
        "face_index": 0,
        "created_at": datetime.now(UTC),
        "image": jpeg,
    }
    await services.publish(topics.SAMPLES, sample_id, record)
    return sample_id


async def read_sample(services: Services, account: str, sample_id: str) -> bytes:
    rows = await services.query(
        f"SELECT image_base64, deleted FROM {services.settings.storage.database}.samples FINAL "
        "WHERE sample_id = %(sample_id)s AND account_id = %(account)s",
        {"sample_id": sample_id, "account": account},
    )
    if not rows or rows[0]["deleted"]:
        raise not_found("sample", sample_id)
    return base64.b64decode(rows[0]["image_base64"])


async def forget_samples(services: Services, face: records.Face) -> None:
    """Deletes (tombstones) the samples of a face being deleted that nothing else holds: not an
    event (the face's own sample, when the face came from one) nor another face."""
    held_by_event = face["sample_id"] if face["event_id"] is not None else None
    for sample_id in {face["sample_id"], face["avatar_sample_id"]} - {None, held_by_event}:
        assert sample_id is not None
        others = services.directory.faces_with_sample(sample_id)
        if all(f["face_id"] == face["face_id"] for f in others):
            await services.publish(topics.SAMPLES, sample_id, None)


async def get_sample(request: Request) -> Response:
    """The sample's JPEG (250x250 aligned face, or an avatar as it was set)."""
    services: Services = request.app.state.services
    jpeg = await read_sample(services, account_id(request), request.path_params["sample_id"])
    return Response(jpeg, media_type="image/jpeg")


def _owned_face(services: Services, request: Request) -> records.Face:
    face_id = request.path_params["face_id"]
    face = services.directory.find_face(account_id(request), face_id)
    if face is None:
        raise not_found("face", face_id)
    return face


async def get_avatar(request: Request) -> Response:
    services: Services = request.app.state.services
    face = _owned_face(services, request)
    if face["avatar_sample_id"] is None:
        raise ApiError(
            404,
            "avatar_not_found",
            f"face {face['face_id']} has no avatar: set one with PUT, or create faces "
            "with avatar=1",
        )
    jpeg = await read_sample(services, face["account_id"], face["avatar_sample_id"])
    return Response(jpeg, media_type="image/jpeg")


async def set_avatar(request: Request) -> JSONResponse:
    """The body (an image, raw or multipart `image`) becomes the face's avatar, kept as a JPEG
    sample of its own; the avatar it replaces is deleted unless something else holds it."""
    services: Services = request.app.state.services
    face = _owned_face(services, request)
    limits = services.settings.image
    data, _ = await image_and_fields(request, services.settings.api.max_body_bytes)

    def as_jpeg() -> bytes:
        image = decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        return encode_jpeg(image)

    jpeg = await run_in_threadpool(as_jpeg)
    sample_id = await publish_sample(services, face["account_id"], jpeg)
    replaced = face["avatar_sample_id"]
    changed: records.Face = {**face, "avatar_sample_id": sample_id}
    await services.save_face(face["face_id"], changed)
    if replaced is not None and replaced != face["sample_id"]:  # an avatar set before: its own
        await services.publish(topics.SAMPLES, replaced, None)
    return render.respond(render.face(changed))


operations = [
    Operation(
        "GET",
        "/v1/samples/{sample_id}",
        get_sample,
        "A face sample, JPEG",
        {200: JPEG},
        {404: "sample_not_found", 503: STORAGE},
    ),
    Operation(
        "GET",
        "/v1/faces/{face_id}/avatar",
        get_avatar,
        "A face's avatar, JPEG",
        {200: JPEG},
        {404: "face_not_found, avatar_not_found or sample_not_found", 503: STORAGE},
    ),
    Operation(
        "PUT",
        "/v1/faces/{face_id}/avatar",
        set_avatar,
        "Set a face's avatar from an image",
        {200: Face},
        {404: "face_not_found"},
        image=True,
    ),
]
