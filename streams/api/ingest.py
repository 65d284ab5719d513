"""POST /v1/images: into the pipeline; with wait=1, the finished event."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from streams.api import render
from streams.api.errors import ApiError
from streams.api.liveness import licensed_or_403
from streams.api.requests import account_id, image_and_fields, query
from streams.api.services import Services
from streams.api.shapes import Accepted, Event, ImagesQuery
from streams.api.spec import Operation

MEDIA_TYPE = "application/json"
# Most senders give no parameters: the defaults, validated once (query models are frozen).
NO_QUERY = ImagesQuery()


async def send_image(request: Request) -> Response:
    """The body is the image itself (`image/*` or `application/octet-stream`) or a
    `multipart/form-data` form with the file in the field `image`. Answers 202 with the event id;
    with `wait=1` waits for the finished event (up to `timeout` seconds) and answers 200 with it
    once it is stored, so every route can read it at once, or 504 `pipeline_timeout` when the
    pipeline is slower."""
    services: Services = request.app.state.services
    settings = services.settings
    account = account_id(request)
    params = query(request, ImagesQuery) if request.scope["query_string"] else NO_QUERY
    timeout = params.timeout or settings.api.wait_timeout_s
    data, _ = await image_and_fields(request, settings.api.max_body_bytes)
    if not data:
        raise ApiError(400, "empty_image", "the request carries no image bytes")
    if params.estimate_liveness:
        licensed_or_403("images", settings)
    list_ids = params.list_id
    for list_id in list_ids:
        if services.directory.find_list(account, list_id) is None:
            raise ApiError(404, "list_not_found", f"list {list_id} does not exist in this account")
    record = services.images.image_record(
        data,
        account_id=account,
        list_ids=list_ids,
        source=params.source,
        min_quality=params.min_quality,
        estimate_liveness=params.estimate_liveness,
        estimate_basic_attributes=params.estimate_basic_attributes,
    )
    event_id: str = record["context"]["event_id"]
    finished = services.feed.expect(event_id) if params.wait else None
    try:  # the feed forgets the event however the request ends
        # The 202 promises an image the broker holds: a lost connection after it loses nothing.
        await services.images.deliver(record)
        if finished is None:
            # Serialised by pydantic's compiled encoder: the hottest answer of the API.
            accepted = Accepted(event_id=event_id).model_dump_json()
            return Response(accepted, 202, media_type=MEDIA_TYPE)
        try:
            event = await asyncio.wait_for(finished, timeout)
        except TimeoutError:
            stage = (
                "finished but not yet stored"
                if event_id in services.feed.finished
                else "accepted but not finished"
            )
            raise ApiError(
                504,
                "pipeline_timeout",
                f"event {event_id} was {stage} within {timeout:g} s; "
                f"read it later with GET /v1/events/{event_id}",
            ) from None
    finally:
        services.feed.forget(event_id)
    return render.respond(render.event_from_record(event))


operations = [
    Operation(
        "POST",
        "/v1/images",
        send_image,
        "Send an image into the pipeline",
        {202: Accepted, 200: Event},
        {
            403: "estimate_liveness=1 under a licence without Liveness V2 in the pipeline "
            "(liveness_not_licensed, liveness_v1_not_on_images, liveness_v1_option_conflict)",
            404: "list_not_found",
            504: "pipeline_timeout: accepted, not finished in time",
        },
        query=ImagesQuery,
        image=True,
    )
]
