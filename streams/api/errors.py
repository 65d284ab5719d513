"""Every error leaves the API as JSON: a stable `error_code` and a `desc` for a person."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from processors.errors import ProcessingError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, desc: str) -> None:
        super().__init__(desc)
        self.status = status
        self.code = code
        self.desc = desc


def not_found(kind: str, identifier: str) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"{kind} {identifier} does not exist in this account")


def error_response(
    status: int, code: str, desc: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error_code": code, "desc": desc}, status_code=status, headers=headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.desc)


async def processing_error(request: Request, exc: Exception) -> Response:
    """A bad image or face (undecodable, no face, ...) is the client's: 400 with its code."""
    assert isinstance(exc, ProcessingError)
    return error_response(400, exc.code, exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "route_not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail, exc.headers)  # a 405's Allow


async def internal_error(request: Request, exc: Exception) -> Response:
    """The client learns only an id to quote; the log line with that id has the traceback
    (an exception's text may hold SQL, paths or a server's stack trace)."""
    error_id = uuid.uuid4().hex
    log.error("%s %s failed, error id %s", request.method, request.url.path, error_id, exc_info=exc)
    return error_response(500, "internal_error", f"the server failed; error id {error_id}")


HANDLERS = {
    ApiError: api_error,
    ProcessingError: processing_error,
    HTTPException: http_error,
    Exception: internal_error,
}
