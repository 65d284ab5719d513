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

from streams.api import render
from streams.api.errors import ApiError
from streams.api.lists import JSON_LIMIT
from streams.api.requests import admin, json_model
from streams.api.requests import task_id as valid_task_id
from streams.api.services import Services
from streams.api.shapes import Reextract, Task, Tasks
from streams.api.spec import Media, Operation
from streams.kafka import topics
from streams.kafka.reader import TopicReader
from streams.worker.replay import ReextractionTask

log = logging.getLogger(__name__)


@dataclass
class Running:
    task: ReextractionTask
    runner: asyncio.Task[Any]
    error: str | None = None

    def view(self) -> Task:
        progress = self.task.progress.as_dict()
        if self.error:
            progress |= {"status": "failed", "error": self.error}
        return Task.model_validate(
            {"task_id": self.task.task_id, "version": self.task.version, **progress}
        )


async def start_reextraction(request: Request) -> JSONResponse:
    """Replays the samples topic from its beginning under the task's own consumer group; new
    descriptors go beside the old ones. The same task_id resumes a stopped task without redoing
    finished samples. Faces without a sample and deleted samples are reported as not
    re-extractable. `lanes` is how many extractions run side by side, each on one thread
    (default: one per core of the API's machine)."""
    services: Services = request.app.state.services
    admin(request)
    body = await json_model(request, Reextract, JSON_LIMIT)
    version, lanes = body.version, body.lanes
    task_id = body.task_id or f"to-v{version}"
    tasks: dict[str, Running] = services.tasks
    if task_id in tasks and not tasks[task_id].runner.done():
        raise ApiError(409, "task_running", f"task {task_id} is already running")
    task = ReextractionTask(
        services.settings,
        version,
        task_id,
        models=services.models,
        lanes=lanes,
        producer=services.producer,
    )

    async def run() -> None:
        try:
            await task.run()
        except Exception as error:
            log.exception("re-extraction task %s failed", task_id)
            tasks[task_id].error = repr(error)

    tasks[task_id] = Running(task, asyncio.create_task(run(), name=f"reextract-{task_id}"))
    return render.respond(tasks[task_id].view(), 202)


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
    return render.respond(Tasks(tasks=tuple(found.view() for found in tasks.values())))


async def get_task(request: Request) -> JSONResponse:
    return render.respond(running(request).view())


async def stop_task(request: Request) -> JSONResponse:
    found = running(request)
    found.task.stop()
    await asyncio.wait({found.runner}, timeout=30)
    return render.respond(found.view())


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


def _admin(
    method: str, path: str, handler: Any, summary: str, answers: Any, **more: Any
) -> Operation:
    return Operation(method, path, handler, summary, answers, account=False, admin=True, **more)


NOT_FOUND = {404: "task_not_found: this API process started no such task"}
LOG = Media("application/x-ndjson", example='{"sample_id": "...", "ok": true}\n')
operations = [
    _admin("GET", "/v1/tasks", list_tasks, "The tasks this API process started", {200: Tasks}),
    _admin(
        "POST",
        "/v1/tasks/reextract",
        start_reextraction,
        "Start re-extracting every stored sample with a descriptor version",
        {202: Task},
        errors={409: "task_running"},
        body=Reextract,
    ),
    _admin(
        "GET",
        "/v1/tasks/{task_id}",
        get_task,
        "A task's status and counts",
        {200: Task},
        errors=NOT_FOUND,
    ),
    _admin(
        "POST",
        "/v1/tasks/{task_id}/stop",
        stop_task,
        "Stop a task after its current batch (resume by starting it again)",
        {200: Task},
        errors=NOT_FOUND,
    ),
    _admin(
        "GET",
        "/v1/tasks/{task_id}/log",
        task_log,
        "Download the task's log, one JSON object per processed or refused sample",
        {200: LOG},
    ),
]
