"""GET /v1/events and /v1/events/{id}: events from ClickHouse, always within the account."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from sinks.types import ParamValue
from streams.api import render
from streams.api.errors import not_found
from streams.api.requests import account_id, query
from streams.api.services import Services
from streams.api.shapes import Event, EventFilters, EventPage, EventsQuery
from streams.api.spec import Operation


def _datetime(moment: datetime) -> str:
    """As ClickHouse's toDateTime(..., 'UTC') reads it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# The condition of each filter of EventsQuery, binding the filter's value by its own name.
CONDITIONS = {
    "created_from": "created_at >= toDateTime(%(created_from)s, 'UTC')",
    "created_to": "created_at <= toDateTime(%(created_to)s, 'UTC')",
    # The ids joined by commas (an id with a comma in it, which only a Kafka enrollment can
    # name, cannot be filtered on).
    "list_id": "hasAny(list_ids, splitByChar(',', %(list_id)s))",
    "similarity_gte": "arrayExists(s -> s >= %(similarity_gte)s, best_match_similarity)",
    "liveness_gte": "face_count > 0 AND arrayAll(p -> p >= %(liveness_gte)s, liveness_probability)",
    "status": "status = %(status)s",
    "error_code": "error_code = %(error_code)s",
}


# The age range and gender select events with one face meeting them all: one condition.
ATTRIBUTE_FILTERS = ("age_gte", "age_lte", "gender")
ATTRIBUTES_CONDITION = (
    "arrayExists((a, g) -> a >= %(age_from)s AND a <= %(age_to)s "
    "AND (%(gender)s = '' OR g = %(gender)s) AND g != '', face_ages, face_genders)"
)
AGES = (0.0, 200.0)  # the filters' range: every estimated age


def _attribute_bounds(given: EventFilters) -> tuple[float, float, str]:
    return (
        AGES[0] if given.age_gte is None else given.age_gte,
        AGES[1] if given.age_lte is None else given.age_lte,
        given.gender or "",
    )


def accepts(given: EventFilters, event: Event) -> bool:
    """Whether `event` passes the filters given, as CONDITIONS select stored events."""
    faces = event.faces
    low, high, gender = _attribute_bounds(given)
    fitting = [
        a
        for a in (face.basic_attributes for face in faces)
        if a is not None and low <= a.age <= high and gender in ("", a.gender)
    ]
    best = [face.matches[0].similarity if face.matches else 0.0 for face in faces]  # as stored
    alive = [face.liveness.probability if face.liveness else None for face in faces]
    return not (
        (given.list_id and not set(given.list_id) & set(event.list_ids))
        or (given.similarity_gte is not None and not any(s >= given.similarity_gte for s in best))
        or (
            given.liveness_gte is not None
            and not (faces and all(p is not None and p >= given.liveness_gte for p in alive))
        )
        or (given.status is not None and event.status != given.status)
        or (given.error_code is not None and event.error_code != given.error_code)
        or (any(getattr(given, f) is not None for f in ATTRIBUTE_FILTERS) and not fitting)
    )


def filters(given: EventsQuery, account: str) -> tuple[list[str], dict[str, ParamValue]]:
    """The conditions of a listing (those of the filters given) and the values they bind."""
    conditions, params = ["account_id = %(account)s"], dict[str, ParamValue](account=account)
    for name, condition in CONDITIONS.items():
        value = getattr(given, name)
        if value is not None and value != []:
            conditions.append(condition)
            params[name] = (
                _datetime(value)
                if isinstance(value, datetime)
                else ",".join(value)
                if isinstance(value, list)
                else value
            )
    if any(getattr(given, name) is not None for name in ATTRIBUTE_FILTERS):
        conditions.append(ATTRIBUTES_CONDITION)
        params["age_from"], params["age_to"], params["gender"] = _attribute_bounds(given)
    return conditions, params


async def list_events(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    given = query(request, EventsQuery)
    page_number, size = given.page, given.page_size
    table = f"{services.settings.storage.database}.events FINAL"
    conditions, params = filters(given, account)
    where = " AND ".join(conditions)
    rows = await services.query(
        f"SELECT {render.EVENT_COLUMNS} FROM {table} WHERE {where} "
        "ORDER BY created_at DESC, event_id LIMIT %(offset)s, %(size)s",
        params | {"offset": (page_number - 1) * size, "size": size},
    )
    (total,) = await services.query(f"SELECT count() AS n FROM {table} WHERE {where}", params)
    events = tuple(render.event_from_row(row) for row in rows)
    return render.respond(
        EventPage(events=events, page=page_number, page_size=size, total=int(total["n"]))
    )


async def get_event(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    event_id = request.path_params["event_id"]
    rows = await services.query(
        f"SELECT {render.EVENT_COLUMNS} FROM {services.settings.storage.database}.events FINAL "
        "WHERE account_id = %(account)s AND event_id = %(event_id)s",
        {"account": account, "event_id": event_id},
    )
    if not rows:
        raise not_found("event", event_id)
    return render.respond(render.event_from_row(rows[0]))


STORAGE = "storage_not_shared: events are in the worker's embedded chDB"
operations = [
    Operation(
        "GET",
        "/v1/events",
        list_events,
        "List events, newest first",
        {200: EventPage},
        {503: STORAGE},
        query=EventsQuery,
    ),
    Operation(
        "GET",
        "/v1/events/{event_id}",
        get_event,
        "One event",
        {200: Event},
        {404: "event_not_found", 503: STORAGE},
    ),
]
