"""GET /v1/ws/events: an account's events pushed over a WebSocket as they are stored.

The first message confirms the subscription (`{"subscribed": {...}}`); then each event that
passes the filters (those of GET /v1/events) comes as the JSON GET /v1/events/{id} answers.
A refused subscription (no account, bad filters) gets the API's error body, then the close
code 1008. A subscriber that falls api.ws_queue_size events behind gets `subscriber_too_slow`
and the close code 1013 (try again later); one whose socket takes no data for
api.ws_send_timeout_s is closed. Neither slows the API nor another subscriber: the feed never
waits for a queue. Events missed while disconnected are read with GET /v1/events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from streams.api import render
from streams.api.errors import ApiError
from streams.api.events import accepts
from streams.api.requests import account_id, query
from streams.api.services import Services
from streams.api.shapes import Event, EventsSocketQuery
from streams.api.spec import Operation

log = logging.getLogger(__name__)

POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013  # RFC 6455 close codes


async def _until_closed(websocket: WebSocket) -> None:
    """Reads (and ignores) what the client sends until it closes."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


async def events_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    settings = services.settings.api
    await websocket.accept()
    try:
        given = query(websocket, EventsSocketQuery)
        account = account_id(websocket, given.account_id)
    except ApiError as refused:
        await websocket.send_json({"error_code": refused.code, "desc": refused.desc})
        await websocket.close(POLICY_VIOLATION)
        return

    def select(record: dict[str, Any]) -> Event | None:
        event = render.event_from_record(record)
        return event if accepts(given, event) else None

    subscription = services.feed.subscribe(account, select, settings.ws_queue_size)
    closed = asyncio.create_task(_until_closed(websocket))
    filters = given.model_dump(exclude_none=True, exclude={"account_id"})
    try:
        await websocket.send_json({"subscribed": {"account_id": account, "filters": filters}})
        while True:
            taking = asyncio.ensure_future(subscription.queue.get())
            await asyncio.wait({taking, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not taking.done():  # the client went away
                taking.cancel()
                return
            event = taking.result()
            if event is None:
                log.warning("a subscriber of account %s fell behind; dropped", account)
                await asyncio.wait_for(
                    websocket.send_json(
                        {
                            "error_code": "subscriber_too_slow",
                            "desc": f"{settings.ws_queue_size} events were waiting to be sent; "
                            "reconnect, and read what was missed with GET /v1/events",
                        }
                    ),
                    settings.ws_send_timeout_s,
                )
                await websocket.close(TRY_AGAIN_LATER)
                return
            await asyncio.wait_for(
                websocket.send_text(event.model_dump_json()), settings.ws_send_timeout_s
            )
    except TimeoutError:
        log.warning("a subscriber of account %s takes no data; closed", account)
        with contextlib.suppress(Exception):
            await websocket.close(TRY_AGAIN_LATER)
    except (WebSocketDisconnect, RuntimeError):  # gone while we were sending
        pass
    finally:
        services.feed.unsubscribe(subscription)
        closed.cancel()


async def events_socket_over_http(request: Request) -> Response:
    """A WebSocket (GET with `Upgrade: websocket`) that pushes the account's events as they are
    stored: first `{"subscribed": {"account_id", "filters"}}`, then each event as
    GET /v1/events/{id} answers it. The account is the Luna-Account-Id header or, for clients
    that cannot set one (browsers), the `account_id` parameter. A refusal is the error body,
    then close code 1008; a subscriber api.ws_queue_size events behind gets
    `subscriber_too_slow` and close code 1013. A plain GET is 426."""
    query(request, EventsSocketQuery)  # a bad filter says so over plain HTTP too
    raise ApiError(
        426, "upgrade_required", "GET /v1/ws/events is a WebSocket: connect with Upgrade"
    )


routes = [WebSocketRoute("/v1/ws/events", events_socket)]
operations = [
    Operation(
        "GET",
        "/v1/ws/events",
        events_socket_over_http,
        "Events pushed as they are stored (WebSocket)",
        {101: None},
        {426: "upgrade_required: a plain GET, not a WebSocket"},
        query=EventsSocketQuery,
    )
]
