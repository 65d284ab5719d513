"""Tasks where every process finds them: the compacted tasks topic holds each task's latest
state (key: task id), written by the process that runs it at every heartbeat and when it ends;
every API process follows the topic into a `TaskBoard`. A task whose process died stops being
written: one still "running" past `STALE_BEATS` heartbeats is shown as interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.records import TaskState
from streams.kafka import topics
from streams.kafka.reader import TopicReader, keep_following
from streams.settings import Settings

log = logging.getLogger(__name__)
STALE_BEATS = 5  # heartbeats missed before a running task counts as interrupted
UNFINISHED = ("starting", "running")
INTERRUPTED = "interrupted"
OWNER = f"{socket.gethostname()}:{os.getpid()}"  # this process, as task states name it


class TaskRecorder:
    """Writes one task's state: now and then on demand, every heartbeat while `beating`."""

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer, task_id: str, version: int
    ) -> None:
        self.settings = settings
        self.producer = producer  # started, and owned, by the caller
        self.task_id = task_id
        self.version = version
        self.started_at = datetime.now(UTC)

    def state(self, counts: Mapping[str, Any], error: str | None = None) -> TaskState:
        """`counts`: status, total, processed, errors, not_reextractable (Progress.as_dict)."""
        return {
            "task_id": self.task_id,
            "kind": "reextract",
            "version": self.version,
            "status": counts["status"],
            "total": counts["total"],
            "processed": counts["processed"],
            "errors": counts["errors"],
            "not_reextractable": counts["not_reextractable"],
            "error": error,
            "owner": OWNER,
            "started_at": self.started_at,
            "updated_at": datetime.now(UTC),
        }

    async def publish(self, counts: Mapping[str, Any], error: str | None = None) -> None:
        name = topics.topic_name(self.settings.kafka, topics.TASKS)
        value = topics.TASKS.encode(self.state(counts, error))
        await self.producer.send_and_wait(name, value, key=self.task_id.encode())

    async def beating(self, counts: Callable[[], Mapping[str, Any]]) -> None:
        """Publishes the counts every heartbeat until cancelled; a failed write (the broker
        away) is logged and the beat goes on."""
        while True:
            try:
                await self.publish(counts())
            except Exception:
                log.warning("task %s: its state was not written", self.task_id, exc_info=True)
            await asyncio.sleep(self.settings.api.task_heartbeat_s)


async def run_recorded(
    recorder: TaskRecorder, work: Awaitable[object], counts: Callable[[], Mapping[str, Any]]
) -> None:
    """Awaits `work` while its counts are written every heartbeat, then writes its final state
    (failed, with the error, when it raised; the error is raised on)."""
    beat = asyncio.create_task(recorder.beating(counts))
    error = None
    try:
        await work
    except Exception as failure:
        error = repr(failure)
        raise
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        final = {**counts(), **({"status": "failed"} if error else {})}
        try:
            await recorder.publish(final, error)
        except Exception:  # shown as interrupted once its heartbeats are old
            log.warning("task %s: its final state was not written", recorder.task_id, exc_info=True)


def shown(state: TaskState, heartbeat_s: float, now: datetime | None = None) -> TaskState:
    """The state as it stands: an unfinished one whose process stopped writing is interrupted."""
    age = (now or datetime.now(UTC)) - state["updated_at"]
    if state["status"] not in UNFINISHED or age <= timedelta(seconds=STALE_BEATS * heartbeat_s):
        return state
    when = state["updated_at"].isoformat(timespec="seconds")
    why = (
        f"its process ({state['owner']}) stopped writing its state at {when}; start it again "
        "with the same task_id to resume"
    )
    return {**state, "status": INTERRUPTED, "error": why}


class TaskBoard:
    """Every task's latest state, as the tasks topic says; `ready` once the topic is loaded."""

    def __init__(self) -> None:
        self.states: dict[str, TaskState] = {}
        self.ready = asyncio.Event()

    def apply(self, task_id: str, state: TaskState | None, offset: int) -> None:
        if state is None:
            self.states.pop(task_id, None)
        else:
            self.states[task_id] = state

    async def follow(self, settings: Settings) -> None:
        """Loads the topic from its beginning, then follows it; never left dead."""
        await keep_following("tasks", lambda: self._follow(settings))

    async def _follow(self, settings: Settings) -> None:
        async with TopicReader(settings, topics.TASKS, from_beginning=True) as reader:
            while True:
                if not self.ready.is_set() and await reader.caught_up():
                    self.ready.set()
                await reader.apply_each(self.apply, timeout=0.2)
