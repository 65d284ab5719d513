"""Re-extraction tasks over HTTP: start one, list them, follow its counts, stop it, download
its log. A task spans every account: these are the administrator's routes.

A task runs in the API process that started it, which writes its state to the compacted tasks
topic at every heartbeat and when it ends (streams/kafka/task_states.py); every API process
follows that topic, so any of them, and one started after a restart, answers for every task. Its
log is the reextractions topic, keyed by task id, which every process reads too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from schemas.records import TaskState
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
from streams.kafka.task_states import (
    OWNER,
    UNFINISHED,
    TaskBoard,
    TaskRecorder,
    run_recorded,
    shown,
)
from streams.worker.replay import ReextractionTask

log = logging.getLogger(__name__)
STOP_WAIT_S = 20  # at shutdown, for the running tasks' current batches (SIGTERM allows 30)


@dataclass
class Running:
    """A task this process runs."""

    task: ReextractionTask
    recorder: TaskRecorder
    runner: asyncio.Task[Any]
    error: str | None = None

    def state(self) -> TaskState:
        progress = self.task.progress.as_dict()
        if self.error:
            progress["status"] = "failed"
        return self.recorder.state(progress, self.error)


def view(state: TaskState) -> Task:
    return Task.model_validate(state)  # the shape takes what it shows, the rest is ignored


@contextlib.asynccontextmanager
async def lifetime(app: Starlette) -> AsyncIterator[None]:
    """The task board, followed while the app serves; at the end the tasks running here stop
    after their current batch (resumable, their state written as stopped)."""
    services: Services = app.state.services
    board = app.state.task_board = TaskBoard()
    follower = asyncio.create_task(board.follow(services.settings), name="tasks")
    try:
        await asyncio.wait_for(board.ready.wait(), timeout=60)
        yield
    finally:
        running: dict[str, Running] = services.tasks
        for found in running.values():
            found.task.stop()
        if runners := {found.runner for found in running.values() if not found.runner.done()}:
            await asyncio.wait(runners, timeout=STOP_WAIT_S)
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


def states(request: Request) -> dict[str, TaskState]:
    """Every task's state as it stands now: this process's own tasks as they run, the others'
    as the tasks topic has them (an unfinished one whose process died, interrupted)."""
    services: Services = request.app.state.services
    board: TaskBoard = request.app.state.task_board
    heartbeat_s = services.settings.api.task_heartbeat_s
    found = {task_id: shown(state, heartbeat_s) for task_id, state in board.states.items()}
    running: dict[str, Running] = services.tasks
    return found | {task_id: here.state() for task_id, here in running.items()}


async def start_reextraction(request: Request) -> JSONResponse:
    """Replays the samples topic from its beginning under the task's own consumer group; new
    descriptors go beside the old ones. The same task_id resumes a stopped or interrupted task
    without redoing finished samples. Faces without a sample and deleted samples are reported as
    not re-extractable. `lanes` is how many extractions run side by side, each on one thread
    (default: one per core of the API's machine)."""
    services: Services = request.app.state.services
    admin(request)
    body = await json_model(request, Reextract, JSON_LIMIT)
    version, lanes = body.version, body.lanes
    task_id = body.task_id or f"to-v{version}"
    tasks: dict[str, Running] = services.tasks
    if task_id in tasks and not tasks[task_id].runner.done():
        raise ApiError(409, "task_running", f"task {task_id} is already running")
    elsewhere = states(request).get(task_id)
    if elsewhere and elsewhere["status"] in UNFINISHED and elsewhere["owner"] != OWNER:
        raise ApiError(
            409, "task_running", f"task {task_id} is running in process {elsewhere['owner']}"
        )
    task = ReextractionTask(
        services.settings,
        version,
        task_id,
        models=services.models,
        lanes=lanes,
        producer=services.producer,
    )
    recorder = TaskRecorder(services.settings, services.producer, task_id, version)

    async def run() -> None:
        try:
            await run_recorded(recorder, task.run(), task.progress.as_dict)
        except Exception as error:
            log.exception("re-extraction task %s failed", task_id)
            tasks[task_id].error = repr(error)

    tasks[task_id] = Running(
        task, recorder, asyncio.create_task(run(), name=f"reextract-{task_id}")
    )
    return render.respond(view(tasks[task_id].state()), 202)


def found_state(request: Request) -> TaskState:
    admin(request)
    task_id = valid_task_id(request.path_params["task_id"])
    found = states(request).get(task_id)
    if found is None:
        raise ApiError(404, "task_not_found", f"no task {task_id}")
    return found


async def list_tasks(request: Request) -> JSONResponse:
    """Every task of the deployment, oldest first, with their counts."""
    admin(request)
    ordered = sorted(states(request).values(), key=lambda state: state["started_at"])
    return render.respond(Tasks(tasks=tuple(view(state) for state in ordered)))


async def get_task(request: Request) -> JSONResponse:
    return render.respond(view(found_state(request)))


async def stop_task(request: Request) -> JSONResponse:
    """Stops a task this process runs; one that another process runs is answered 409."""
    state = found_state(request)
    found: Running | None = request.app.state.services.tasks.get(state["task_id"])
    if found is None:
        if state["status"] in UNFINISHED:
            raise ApiError(
                409,
                "task_running_elsewhere",
                f"task {state['task_id']} runs in process {state['owner']}: stop it there",
            )
        return render.respond(view(state))  # over already
    found.task.stop()
    await asyncio.wait({found.runner}, timeout=30)
    return render.respond(view(found.state()))


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


NOT_FOUND = {404: "task_not_found: no task of that id was ever started"}
LOG = Media("application/x-ndjson", example='{"sample_id": "...", "ok": true}\n')
operations = [
    _admin("GET", "/v1/tasks", list_tasks, "Every task, oldest first", {200: Tasks}),
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
        errors=NOT_FOUND | {409: "task_running_elsewhere: another API process runs it"},
    ),
    _admin(
        "GET",
        "/v1/tasks/{task_id}/log",
        task_log,
        "Download the task's log, one JSON object per processed or refused sample",
        {200: LOG},
    ),
]
