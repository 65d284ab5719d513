"""A request waiting for its event is answered once the event is finished and stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from streams.api.feed import EventFeed


def event(event_id: str, account: str = "a") -> dict[str, object]:
    return {"context": {"event_id": event_id, "account_id": account}}


class Storage:
    """Which events the store has written; what the feed asked."""

    def __init__(self) -> None:
        self.stored: set[str] = set()
        self.asked: list[dict[str, str]] = []
        self.down = False

    async def stored_ids(self, accounts: Mapping[str, str]) -> set[str]:
        self.asked.append(dict(accounts))
        if self.down:
            raise ConnectionError("ClickHouse is down")
        return self.stored & set(accounts)


async def test_answered_once_stored_not_before() -> None:
    storage = Storage()
    feed = EventFeed(stored_ids=storage.stored_ids)
    confirming = asyncio.create_task(feed._confirm())
    try:
        first, second = feed.expect("e1"), feed.expect("e2")
        feed.on_event(event("e1", "a"))
        feed.on_event(event("e2", "b"))
        feed.on_event(event("e3", "a"))  # nobody waits for it
        await asyncio.sleep(0.1)
        assert not first.done() and not second.done()
        assert storage.asked[-1] == {"e1": "a", "e2": "b"}
        storage.stored.add("e1")
        assert (await asyncio.wait_for(first, 1))["context"]["event_id"] == "e1"
        assert not second.done() and list(feed.finished) == ["e2"]
        storage.down = True  # unreachable storage: the request keeps waiting, nothing breaks
        storage.stored.add("e2")
        await asyncio.sleep(0.1)
        assert not second.done()
        storage.down = False
        assert (await asyncio.wait_for(second, 3))["context"]["event_id"] == "e2"
        assert feed.pending == {} and feed.finished == {}
        asked = len(storage.asked)
        await asyncio.sleep(0.1)
        assert len(storage.asked) == asked  # idle: no queries
    finally:
        confirming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await confirming


async def test_a_forgotten_event_is_no_longer_looked_up() -> None:
    storage = Storage()
    feed = EventFeed(stored_ids=storage.stored_ids)
    feed.expect("e1")
    feed.on_event(event("e1"))
    feed.forget("e1")  # the request timed out
    confirming = asyncio.create_task(feed._confirm())
    await asyncio.sleep(0.1)
    confirming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await confirming
    assert storage.asked == []


async def test_without_shared_storage_answered_when_finished() -> None:
    feed = EventFeed()
    future = feed.expect("e1")
    feed.on_event(event("e1"))
    assert future.done() and feed.pending == {}


async def test_subscribers_get_their_accounts_stored_events_as_selected() -> None:
    storage = Storage()
    feed = EventFeed(stored_ids=storage.stored_ids)
    mine = feed.subscribe("a", lambda e: e["context"]["event_id"], size=10)
    picky = feed.subscribe("a", lambda e: None if e["context"]["event_id"] == "e1" else 1, 10)
    theirs = feed.subscribe("b", lambda e: e["context"]["event_id"], size=10)
    confirming = asyncio.create_task(feed._confirm())
    try:
        for event_id, account in (("e1", "a"), ("e2", "b"), ("e3", "a"), ("e4", "c")):
            feed.on_event(event(event_id, account))
        assert set(feed.finished) == {"e1", "e2", "e3"}  # nobody wants account c's
        await asyncio.sleep(0.1)
        assert mine.queue.empty()  # finished, not stored yet
        storage.stored |= {"e1", "e2", "e3"}
        assert [await asyncio.wait_for(mine.queue.get(), 1) for _ in range(2)] == ["e1", "e3"]
        assert await asyncio.wait_for(theirs.queue.get(), 1) == "e2"
        assert await asyncio.wait_for(picky.queue.get(), 1) == 1
        assert mine.queue.empty() and theirs.queue.empty() and picky.queue.empty()
        feed.unsubscribe(mine)
        feed.unsubscribe(picky)
        assert list(feed.subscribers) == ["b"]
        feed.on_event(event("e5", "a"))  # nobody of account a listens any more
        assert "e5" not in feed.finished
    finally:
        confirming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await confirming


def test_a_subscriber_that_falls_behind_is_dropped_with_an_end_mark() -> None:
    feed = EventFeed()  # no shared storage: delivered when finished
    slow = feed.subscribe("a", lambda e: e["context"]["event_id"], size=3)
    fast = feed.subscribe("a", lambda e: e["context"]["event_id"], size=100)
    for i in range(5):
        feed.on_event(event(f"e{i}", "a"))
    assert slow.dropped and slow.queue.qsize() == 1 and slow.queue.get_nowait() is None
    assert fast.queue.qsize() == 5 and not fast.dropped


def test_a_selection_that_fails_skips_that_subscriber_only() -> None:
    feed = EventFeed()

    def broken(_: object) -> None:
        raise KeyError("faces")

    feed.subscribe("a", broken, size=3)
    fine = feed.subscribe("a", lambda e: e["context"]["event_id"], size=3)
    feed.on_event(event("e1", "a"))
    assert fine.queue.get_nowait() == "e1"
