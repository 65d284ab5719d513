"""The Starlette application: routes, error handlers, and the shared services' lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from streams.api import (
    descriptors,
    docs,
    events,
    faces,
    ingest,
    lists,
    liveness,
    matcher,
    samples,
    tasks,
    ws,
)
from streams.api.errors import HANDLERS
from streams.api.services import Services
from streams.api.spec import Operation, route_table
from streams.control.process import live_settings
from streams.settings import LiveSettings

API: tuple[Operation, ...] = (
    *docs.operations,
    *ingest.operations,
    *events.operations,
    *lists.operations,
    *descriptors.operations,
    *faces.operations,
    *samples.operations,
    *matcher.operations,
    *liveness.operations,
    *tasks.operations,
    *ws.operations,
)
OPERATIONS = (*API, *docs.document_operations(API))
# The socket first: a WebSocket scope never matches an HTTP route, and the other way round.
ROUTES: list[BaseRoute] = [*ws.routes, *route_table(OPERATIONS)]


def create_app(live: LiveSettings) -> Starlette:
    services = Services.create(live)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        try:
            async with tasks.lifetime(app):  # every task's state; the running ones stopped
                yield
        finally:
            await services.stop()

    app = Starlette(routes=ROUTES, exception_handlers=HANDLERS, lifespan=lifespan)
    app.state.services = services
    return app


def app_from_environment() -> Starlette:
    """For `uvicorn --factory` (one per API process): every source, the config topic winning."""
    return create_app(live_settings())
