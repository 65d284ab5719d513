"""Reading requests: the account header, the administrator token, image bodies (raw or
multipart), JSON bodies and query parameters validated by their models (streams.api.shapes)."""

from __future__ import annotations

import hmac
import json
import re
import typing
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection, Request

from streams.api.errors import ApiError
from streams.api.shapes import TASK_ID_PATTERN, Body, Query, refused

ACCOUNT_HEADER = "Luna-Account-Id"
ADMIN_HEADER = "Authorization"
IMAGE_TYPES = ("image/", "application/octet-stream")
MAX_JSON_DEPTH = 32  # far more than any request body here needs
TASK_ID = re.compile(TASK_ID_PATTERN)


def account_id(request: HTTPConnection, fallback: str | None = None) -> str:
    """The request's account: a UUID in the Luna-Account-Id header, required everywhere (a
    WebSocket may give it as `fallback`, from its query)."""
    value = request.headers.get(ACCOUNT_HEADER, fallback)
    if value is None:
        raise ApiError(400, "account_id_missing", f"the {ACCOUNT_HEADER} header is required")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(
            400, "account_id_malformed", f"{ACCOUNT_HEADER} must be a UUID, got {value!r}"
        ) from None


def admin(request: Request) -> None:
    """Routes that span accounts (tasks, settings) need `Authorization: Bearer <api.admin_token>`;
    without a token configured they are off."""
    configured = request.app.state.services.settings.api.admin_token
    if not configured:
        raise ApiError(
            403, "admin_disabled", "administrator routes are off: no api.admin_token is set"
        )
    given = request.headers.get(ADMIN_HEADER)
    if given is None:
        raise ApiError(
            401, "admin_required", f"send the administrator token: {ADMIN_HEADER}: Bearer <token>"
        )
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), configured.encode()
    ):
        raise ApiError(403, "bad_admin_token", "the administrator token is wrong")


def is_admin(request: Request) -> bool:
    """Whether the request carries the administrator token; a wrong one is refused, not
    taken for none."""
    if ADMIN_HEADER not in request.headers:
        return False
    admin(request)
    return True


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


def parse_json(text: str | bytes, code: str) -> Any:
    """JSON that the rest of the API can use as is: nested at most MAX_JSON_DEPTH deep, and
    with no lone surrogate (`"\\ud800"` decodes to a str that no encoder downstream takes)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ApiError(400, code, f"JSON nested over {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise ApiError(400, code, f"not valid JSON: {exc}") from None
    pending = [(value, 1)]  # a loop, not recursion: the depth is what is being checked
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, code, f"JSON nested over {MAX_JSON_DEPTH} levels")
        if isinstance(item, str):
            _encodable(item, code)
        elif isinstance(item, dict):
            for key in item:
                _encodable(key, code)
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)
    return value


def _encodable(text: str, code: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ApiError(
            400, code, "JSON strings must be valid Unicode (a lone surrogate?)"
        ) from None


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", f"send application/json, not {content_type!r}"
        )
    value = parse_json(await body(request, limit), "bad_json")
    if not isinstance(value, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return value


def task_id(value: str) -> str:
    """A task id: it names a consumer group and the log's file name, so plain characters."""
    if not TASK_ID.fullmatch(value):
        raise ApiError(400, "bad_task_id", "a task id is 1 to 128 letters, digits, '.', '_' or '-'")
    return value


def refusal(model: type[BaseModel], exc: ValidationError) -> ApiError:
    """A 400 naming the first refused field, with the code that field (or its model) declares."""
    return ApiError(400, *refused(model, exc))


Q = TypeVar("Q", bound=Query)
B = TypeVar("B", bound=Body)


def query(request: HTTPConnection, model: type[Q]) -> Q:
    """The query parameters as `model`; a list field takes every repetition of its name."""
    params = request.query_params
    values = {
        name: params.getlist(name) if typing.get_origin(field.annotation) is list else params[name]
        for name, field in model.model_fields.items()
        if name in params
    }
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise refusal(model, exc) from None


def parse(model: type[B], value: Any) -> B:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise refusal(model, exc) from None


async def json_model(request: Request, model: type[B], limit: int) -> B:
    """The JSON body as `model` (strict: `true` is no integer)."""
    return parse(model, await json_body(request, limit))
