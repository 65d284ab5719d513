"""The requests that wait for their event (`POST /v1/images?wait=1`).

An event is finished when it appears on the events topic, but the routes that read events
(`GET /v1/events/{id}`, an event as a matcher reference) read ClickHouse, where the worker's
store agent writes it a moment later. So a waiting request is answered only once its event is
also stored: right after the answer, every route of every API process can read it
(read-your-writes). One query per account confirms all the finished events waiting together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.kafka import topics
from streams.kafka.reader import TopicReader, keep_following
from streams.settings import Settings

Record = dict[str, Any]
# Of some finished events (event id -> account id), the ids stored where routes read them.
StoredIds = Callable[[Mapping[str, str]], Awaitable[set[str]]]

log = logging.getLogger(__name__)

CONFIRM_EVERY_S = 0.02  # the store agent writes every storage.flush_interval_s (0.1 s)
CONFIRM_RETRY_MAX_S = 2.0  # storage unreachable: the waiting requests time out meanwhile


@dataclass
class EventWaiter:
    """Futures for the events requests wait for, completed from the events topic once
    `stored_ids` finds them stored; without `stored_ids` (nothing shared to read back: the
    worker's embedded chDB) as soon as they are finished."""

    stored_ids: StoredIds | None = None
    pending: dict[str, asyncio.Future[Record]] = field(default_factory=dict)
    finished: dict[str, Record] = field(default_factory=dict)  # finished, not yet seen stored
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, event_id: str) -> asyncio.Future[Record]:
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        self.pending[event_id] = future
        return future

    def forget(self, event_id: str) -> None:
        """No longer waited for (answered, timed out, or never sent); unknown ids are fine."""
        self.pending.pop(event_id, None)
        self.finished.pop(event_id, None)

    async def follow(self, settings: Settings) -> None:
        """Started again after a failure (a broker outage), never left dead: requests that wait
        would all time out."""
        if self.stored_ids is None:
            await keep_following("events", lambda: self._follow(settings))
            return
        await asyncio.gather(
            keep_following("events", lambda: self._follow(settings)),
            keep_following("stored events", self._confirm),
        )

    def on_event(self, event: Record) -> None:
        """An event read from the events topic."""
        event_id = event["context"]["event_id"]
        future = self.pending.get(event_id)
        if future is None or future.done():
            return
        if self.stored_ids is None:
            self._answer(event_id, event)
        else:
            self.finished[event_id] = event
            self._arrived.set()

    def _answer(self, event_id: str, event: Record) -> None:
        future = self.pending.pop(event_id, None)
        if future is not None and not future.done():
            future.set_result(event)

    async def _follow(self, settings: Settings) -> None:
        async with TopicReader(settings, topics.EVENTS) as events:  # it skips garbage
            while True:
                for _, event in await events.read(timeout=0.2):
                    self.on_event(event)

    async def _confirm(self) -> None:
        assert self.stored_ids is not None
        retry_s = CONFIRM_EVERY_S
        while True:
            await self._arrived.wait()
            if not self.finished:  # all forgotten meanwhile
                self._arrived.clear()
                continue
            waiting = {
                event_id: event["context"]["account_id"]
                for event_id, event in self.finished.items()
            }
            try:
                stored = await self.stored_ids(waiting)
            except Exception as exc:  # the store is unreachable: answers wait, then time out
                log.warning("cannot confirm that waited-for events are stored: %s", exc)
                await asyncio.sleep(retry_s)
                retry_s = min(2 * retry_s, CONFIRM_RETRY_MAX_S)
                continue
            retry_s = CONFIRM_EVERY_S
            for event_id in stored:
                event = self.finished.pop(event_id, None)
                if event is not None:
                    self._answer(event_id, event)
            if not self.finished:
                self._arrived.clear()
            await asyncio.sleep(CONFIRM_EVERY_S)
