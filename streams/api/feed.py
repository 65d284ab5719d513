"""Finished events, to the requests waiting for them (`POST /v1/images?wait=1`) and to the
accounts' WebSocket subscribers (`GET /v1/ws/events`).

An event is finished when it appears on the events topic, but the routes that read events
(`GET /v1/events/{id}`, an event as a matcher reference) read ClickHouse, where the worker's
store agent writes it a moment later. So an event goes out only once it is also stored: whoever
receives it can read it back at once from every route of every API process (read-your-writes).
One query per account confirms all the finished events waiting together. Every API process
follows the whole events topic, so a subscriber gets its account's events whichever process
it is connected to.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
# A finished event not seen stored this long (storage refused it, or is down) is given up: a
# waiting request has timed out by then (api timeouts are at most 300 s).
GIVE_UP_S = 310.0


@dataclass(eq=False)
class Subscription:
    """One subscriber's events of its account, as `select` makes each (None: not wanted),
    queued up to a bound. A subscriber that lets the queue fill is dropped: its queue then
    ends with None."""

    account: str
    select: Callable[[Record], Any]
    queue: asyncio.Queue[Any]
    dropped: bool = False

    def offer(self, event: Record) -> None:
        if self.dropped:
            return
        try:
            chosen = self.select(event)
        except Exception:  # one subscriber's view of one event: never the feed's failure
            log.exception("event %s: a subscriber's selection failed", event["context"]["event_id"])
            return
        if chosen is None:
            return
        try:
            self.queue.put_nowait(chosen)
        except asyncio.QueueFull:  # never wait for a slow reader: the feed serves everyone
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


@dataclass
class EventFeed:
    """Hands out finished events once `stored_ids` finds them stored; without `stored_ids`
    (nothing shared to read back: the worker's embedded chDB) as soon as they are finished."""

    stored_ids: StoredIds | None = None
    pending: dict[str, asyncio.Future[Record]] = field(default_factory=dict)
    subscribers: dict[str, set[Subscription]] = field(default_factory=dict)  # by account
    finished: dict[str, Record] = field(default_factory=dict)  # wanted, not yet seen stored
    _finished_at: dict[str, float] = field(default_factory=dict)  # time.monotonic()
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, event_id: str) -> asyncio.Future[Record]:
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        self.pending[event_id] = future
        return future

    def forget(self, event_id: str) -> None:
        """No longer waited for (answered, timed out, or never sent); unknown ids are fine."""
        self.pending.pop(event_id, None)
        if not self._subscribed(self.finished.get(event_id)):
            self._drop(event_id)

    def _drop(self, event_id: str) -> Record | None:
        self._finished_at.pop(event_id, None)
        return self.finished.pop(event_id, None)

    def subscribe(self, account: str, select: Callable[[Record], Any], size: int) -> Subscription:
        subscription = Subscription(account, select, asyncio.Queue(size))
        self.subscribers.setdefault(account, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        account = self.subscribers.get(subscription.account, set())
        account.discard(subscription)
        if not account:
            self.subscribers.pop(subscription.account, None)

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
        waited = event_id in self.pending and not self.pending[event_id].done()
        if not (waited or self._subscribed(event)):
            return
        if self.stored_ids is None:
            self._deliver(event_id, event)
        else:
            self.finished[event_id] = event
            self._finished_at.setdefault(event_id, time.monotonic())
            self._arrived.set()

    def _subscribed(self, event: Record | None) -> bool:
        return event is not None and event["context"]["account_id"] in self.subscribers

    def _deliver(self, event_id: str, event: Record) -> None:
        future = self.pending.pop(event_id, None)
        if future is not None and not future.done():
            future.set_result(event)
        for subscription in list(self.subscribers.get(event["context"]["account_id"], ())):
            subscription.offer(event)

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
                log.warning("cannot confirm that finished events are stored: %s", exc)
                await asyncio.sleep(retry_s)
                retry_s = min(2 * retry_s, CONFIRM_RETRY_MAX_S)
                continue
            retry_s = CONFIRM_EVERY_S
            for event_id in [e for e in self.finished if e in stored]:  # in finishing order
                event = self._drop(event_id)
                if event is not None:
                    self._deliver(event_id, event)
            expired = time.monotonic() - GIVE_UP_S
            for event_id in [e for e, at in self._finished_at.items() if at < expired]:
                self._drop(event_id)
                log.warning("event %s finished but was not seen stored; given up", event_id)
            if not self.finished:
                self._arrived.clear()
            await asyncio.sleep(CONFIRM_EVERY_S)
