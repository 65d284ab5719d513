"""GET /v1/events and /v1/events/{id}: events from ClickHouse, always within the account."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from streams.api import render
from streams.api.errors import ApiError, not_found
from streams.api.requests import account_id, number, page
from streams.api.services import Services


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "bad_parameter", f"{name} must be an ISO 8601 time, got {raw!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # an offset pushing year 1 or 9999 out of range
        moment = datetime.min.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 2105:  # ClickHouse DateTime's range
        raise ApiError(400, "bad_parameter", f"{name} must be within the years 1970 to 2105")
    return f"toDateTime({quote(moment.strftime('%Y-%m-%d %H:%M:%S'))}, 'UTC')"


def filters(request: Request, account: str) -> list[str]:
    conditions = [f"account_id = {quote(account)}"]
    if (start := _time(request, "created_from")) is not None:
        conditions.append(f"created_at >= {start}")
    if (end := _time(request, "created_to")) is not None:
        conditions.append(f"created_at <= {end}")
    if (list_id := request.query_params.get("list_id")) is not None:
        conditions.append(f"has(list_ids, {quote(list_id)})")
    if (similarity := number(request, "similarity_gte", None, -1, 1)) is not None:
        conditions.append(f"arrayExists(s -> s >= {similarity}, best_match_similarity)")
    if (liveness := number(request, "liveness_gte", None, 0, 1)) is not None:
        conditions.append(
            f"face_count > 0 AND arrayAll(p -> p >= {liveness}, liveness_probability)"
        )
    if (status := request.query_params.get("status")) is not None:
        if status not in ("ok", "error"):
            raise ApiError(400, "bad_parameter", f"status must be ok or error, got {status!r}")
        conditions.append(f"status = {quote(status)}")
    if (code := request.query_params.get("error_code")) is not None:
        conditions.append(f"error_code = {quote(code)}")
    return conditions


async def list_events(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    page_number, size = page(request)
    table = f"{services.settings.storage.database}.events FINAL"
    where = " AND ".join(filters(request, account))
    rows = await services.query(
        f"SELECT {render.EVENT_COLUMNS} FROM {table} WHERE {where} "
        f"ORDER BY created_at DESC, event_id LIMIT {(page_number - 1) * size}, {size}"
    )
    (total,) = await services.query(f"SELECT count() AS n FROM {table} WHERE {where}")
    return JSONResponse(
        {
            "events": [render.event_from_row(row) for row in rows],
            "page": page_number,
            "page_size": size,
            "total": int(total["n"]),
        }
    )


async def get_event(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    event_id = request.path_params["event_id"]
    rows = await services.query(
        f"SELECT {render.EVENT_COLUMNS} FROM {services.settings.storage.database}.events FINAL "
        f"WHERE account_id = {quote(account)} AND event_id = {quote(event_id)}"
    )
    if not rows:
        raise not_found("event", event_id)
    return JSONResponse(render.event_from_row(rows[0]))


routes = [
    Route("/v1/events", list_events, methods=["GET"]),
    Route("/v1/events/{event_id}", get_event, methods=["GET"]),
]
