"""Reading requests: the account header, image bodies (raw or multipart), JSON, parameters."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request

from streams.api.errors import ApiError

ACCOUNT_HEADER = "Luna-Account-Id"
IMAGE_TYPES = ("image/", "application/octet-stream")


def account_id(request: Request) -> str:
    """The request's account: a UUID in the Luna-Account-Id header, required everywhere."""
    value = request.headers.get(ACCOUNT_HEADER)
    if value is None:
        raise ApiError(400, "account_id_missing", f"the {ACCOUNT_HEADER} header is required")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(
            400, "account_id_malformed", f"{ACCOUNT_HEADER} must be a UUID, got {value!r}"
        ) from None


async def body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it grows past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body is over {limit} bytes (at least {size})")


async def image_and_fields(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """The image of a raw image body or of the multipart field `image`, and the other fields."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith(IMAGE_TYPES):
        return await body(request, limit), {}
    if content_type == "multipart/form-data":
        raw = await body(request, limit)  # size-checked as it streams in

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        form = await Request(request.scope, replay).form()
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "image_missing", "the multipart form has no file field `image`")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return await upload.read(), fields
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send an image (image/*, application/octet-stream) or multipart/form-data with a file "
        f"field `image`, not {content_type or 'no content type'}",
    )


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", f"send application/json, not {content_type!r}"
        )
    try:
        value = json.loads(await body(request, limit))
    except ValueError as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return value


def flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "0")
    if value not in ("0", "1"):
        raise ApiError(400, "bad_parameter", f"{name} must be 0 or 1, got {value!r}")
    return value == "1"


def number(
    request: Request, name: str, default: float | None, low: float, high: float
) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be within [{low}, {high}], got {value}")
    return value


def page(request: Request) -> tuple[int, int]:
    page_number = number(request, "page", 1, 1, 1_000_000)
    size = number(request, "page_size", 100, 1, 1000)
    assert page_number is not None and size is not None
    return int(page_number), int(size)
