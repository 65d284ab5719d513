"""Descriptors in and out, so that galleries move between deployments without the photos:
GET /v1/lists/{id}/descriptors streams a list's faces with every descriptor they have, and
`decode` checks a descriptor that comes in (POST /v1/faces, a matcher reference)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from starlette.requests import Request
from starlette.responses import StreamingResponse

from streams.api.errors import ApiError
from streams.api.lists import owned_list
from streams.api.requests import account_id
from streams.api.services import Services
from streams.api.shapes import FaceDescriptor
from streams.api.spec import Media, Operation
from streams.models.modelset import DESCRIPTOR_BYTES

NDJSON = "application/x-ndjson"


def decode(data: str, version: int) -> npt.NDArray[np.float32]:
    """A descriptor sent as base64 float32 values, checked for its version and dimension, and
    L2-normalised as the gallery keeps them; ApiError 400 `bad_descriptor` otherwise."""
    size = DESCRIPTOR_BYTES.get(version)
    if size is None:
        raise ApiError(
            400,
            "bad_descriptor",
            f"descriptor version {version} is unknown (known: {sorted(DESCRIPTOR_BYTES)})",
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise ApiError(400, "bad_descriptor", "the descriptor is not base64") from None
    if len(raw) != size:
        raise ApiError(
            400,
            "bad_descriptor",
            f"a version {version} descriptor is {size // 4} float32 values ({size} bytes), "
            f"got {len(raw)} bytes",
        )
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(vector).all() or norm == 0:
        raise ApiError(400, "bad_descriptor", "the descriptor has non-finite values or is zero")
    return vector / norm


async def list_descriptors(request: Request) -> StreamingResponse:
    """One JSON object a line (FaceDescriptor), a line per descriptor of each of the list's
    faces, every version they have; read with POST /v1/faces (`descriptors`) elsewhere."""
    services: Services = request.app.state.services
    record = owned_list(services, account_id(request), request.path_params["list_id"])
    faces = services.directory.faces_in(record["account_id"], record["list_id"])

    def lines() -> Iterator[bytes]:
        for face in faces:
            for descriptor in face["descriptors"]:
                line = FaceDescriptor(
                    face_id=face["face_id"],
                    user_data=face["user_data"],
                    version=descriptor["version"],
                    vector=base64.b64encode(descriptor["vector"]).decode(),
                )
                yield line.model_dump_json().encode() + b"\n"

    return StreamingResponse(lines(), media_type=NDJSON)


operations = [
    Operation(
        "GET",
        "/v1/lists/{list_id}/descriptors",
        list_descriptors,
        "A list's faces with their descriptors, a JSON line each",
        {200: Media(NDJSON, FaceDescriptor.model_json_schema(mode="serialization"))},
        {404: "list_not_found"},
    ),
]
