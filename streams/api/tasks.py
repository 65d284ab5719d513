"""Re-extraction tasks over HTTP: start one, list them, follow its counts, stop it, download
its log. A task spans every account: these are the administrator's routes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from processors.registry import DESCRIPTOR_VERSIONS
from streams import topics
from streams.api.errors import ApiError
from streams.api.lists import JSON_LIMIT
from streams.api.requests import admin, json_body
from streams.api.requests import task_id as valid_task_id
from streams.api.services import Services
from streams.reader import TopicReader
from streams.reextract import MAX_LANES, ReextractionTask

log = logging.getLogger(__name__)


@dataclass
class Running:
    task: ReextractionTask
    runner: asyncio.Task[Any]
    error: str | None = None

    def view(self) -> dict[str, Any]:
        progress = self.task.progress.as_dict()
        if self.error:
            progress |= {"status": "failed", "error": self.error}
        return {"task_id": self.task.task_id, "version": self.task.version, **progress}


async def start_reextraction(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    admin(request)
    body = await json_body(request, JSON_LIMIT)
    version = body.get("version")
    if type(version) is not int or version not in DESCRIPTOR_VERSIONS:
        raise ApiError(
            400,
            "bad_version",
            f"version must be one of {sorted(DESCRIPTOR_VERSIONS)}, got {version!r}",
        )
    lanes = body.get("lanes")
    if lanes is not None and (type(lanes) is not int or not 1 <= lanes <= MAX_LANES):
        raise ApiError(400, "bad_lanes", f"lanes must be an integer 1..{MAX_LANES}, got {lanes!r}")
    given = body.get("task_id") or f"to-v{version}"
    task_id = valid_task_id(given if isinstance(given, str) else "")
    tasks: dict[str, Running] = services.tasks
    if task_id in tasks and not tasks[task_id].runner.done():
        raise ApiError(409, "task_running", f"task {task_id} is already running")
    task = ReextractionTask(
        services.settings, version, task_id, models=services.models, lanes=lanes
    )

    async def run() -> None:
        try:
            await task.run()
        except Exception as error:
            log.exception("re-extraction task %s failed", task_id)
            tasks[task_id].error = repr(error)

    tasks[task_id] = Running(task, asyncio.create_task(run(), name=f"reextract-{task_id}"))
    return JSONResponse(tasks[task_id].view(), status_code=202)


def running(request: Request) -> Running:
    admin(request)
    task_id = valid_task_id(request.path_params["task_id"])
    found: Running | None = request.app.state.services.tasks.get(task_id)
    if found is None:
        raise ApiError(404, "task_not_found", f"no task {task_id} was started by this API process")
    return found


async def list_tasks(request: Request) -> JSONResponse:
    """The tasks this API process started, oldest first, with their counts."""
    admin(request)
    tasks: dict[str, Running] = request.app.state.services.tasks
    return JSONResponse({"tasks": [found.view() for found in tasks.values()]})


async def get_task(request: Request) -> JSONResponse:
    return JSONResponse(running(request).view())


async def stop_task(request: Request) -> JSONResponse:
    found = running(request)
    found.task.stop()
    await asyncio.wait({found.runner}, timeout=30)
    return JSONResponse(found.view())


async def task_log(request: Request) -> StreamingResponse:
    """Every sample the task processed or refused so far, one JSON object a line."""
    admin(request)
    services: Services = request.app.state.services
    task_id = valid_task_id(request.path_params["task_id"])  # it goes into a header below

    async def lines() -> AsyncIterator[bytes]:
        async with TopicReader(services.settings, topics.REEXTRACTIONS, from_beginning=True) as r:
            while not await r.caught_up():
                for key, entry in await r.read(timeout=0.2):
                    if key == task_id and entry is not None:
                        shown = {k: v for k, v in entry.items() if k != "descriptor"}
                        shown["processed_at"] = entry["processed_at"].isoformat()
                        shown["ok"] = entry["error_code"] is None
                        yield (json.dumps(shown) + "\n").encode()

    headers = {"content-disposition": f'attachment; filename="{task_id}.ndjson"'}
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)


routes = [
    Route("/v1/tasks", list_tasks, methods=["GET"]),
    Route("/v1/tasks/reextract", start_reextraction, methods=["POST"]),
    Route("/v1/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/v1/tasks/{task_id}/stop", stop_task, methods=["POST"]),
    Route("/v1/tasks/{task_id}/log", task_log, methods=["GET"]),
]
