"""POST /v1/images: into the pipeline; with wait=1, the finished event."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from streams.api import render
from streams.api.errors import ApiError
from streams.api.requests import account_id, flag, image_and_fields, number
from streams.api.services import Services


async def send_image(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    settings = services.settings
    account = account_id(request)
    wait = flag(request, "wait")
    timeout = number(request, "timeout", settings.api.wait_timeout_s, 0.1, 300)
    data, _ = await image_and_fields(request, settings.api.max_body_bytes)
    if not data:
        raise ApiError(400, "empty_image", "the request carries no image bytes")
    list_ids = request.query_params.getlist("list_id")
    for list_id in list_ids:
        if services.directory.find_list(account, list_id) is None:
            raise ApiError(404, "list_not_found", f"list {list_id} does not exist in this account")
    record = services.images.image_record(
        data, account_id=account, list_ids=list_ids, source=request.query_params.get("source")
    )
    event_id: str = record["context"]["event_id"]
    finished = services.waiter.expect(event_id) if wait else None
    await services.images.send_record(record)
    if finished is None:
        return JSONResponse({"event_id": event_id}, status_code=202)
    try:
        event = await asyncio.wait_for(finished, timeout)
    except TimeoutError:
        services.waiter.pending.pop(event_id, None)
        raise ApiError(
            504,
            "pipeline_timeout",
            f"event {event_id} was accepted but not finished within {timeout:g} s; "
            f"read it later with GET /v1/events/{event_id}",
        ) from None
    return JSONResponse(render.event_from_record(event), status_code=200)


routes = [Route("/v1/images", send_image, methods=["POST"])]
