"""A request waiting for its event is answered once the event is finished and stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from streams.api.waiter import EventWaiter


def event(event_id: str, account: str = "a") -> dict[str, object]:
    return {"context": {"event_id": event_id, "account_id": account}}


class Storage:
    """Which events the store has written; what the waiter asked."""

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
    waiter = EventWaiter(stored_ids=storage.stored_ids)
    confirming = asyncio.create_task(waiter._confirm())
    try:
        first, second = waiter.expect("e1"), waiter.expect("e2")
        waiter.on_event(event("e1", "a"))
        waiter.on_event(event("e2", "b"))
        waiter.on_event(event("e3", "a"))  # nobody waits for it
        await asyncio.sleep(0.1)
        assert not first.done() and not second.done()
        assert storage.asked[-1] == {"e1": "a", "e2": "b"}
        storage.stored.add("e1")
        assert (await asyncio.wait_for(first, 1))["context"]["event_id"] == "e1"
        assert not second.done() and list(waiter.finished) == ["e2"]
        storage.down = True  # unreachable storage: the request keeps waiting, nothing breaks
        storage.stored.add("e2")
        await asyncio.sleep(0.1)
        assert not second.done()
        storage.down = False
        assert (await asyncio.wait_for(second, 3))["context"]["event_id"] == "e2"
        assert waiter.pending == {} and waiter.finished == {}
        asked = len(storage.asked)
        await asyncio.sleep(0.1)
        assert len(storage.asked) == asked  # idle: no queries
    finally:
        confirming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await confirming


async def test_a_forgotten_event_is_no_longer_looked_up() -> None:
    storage = Storage()
    waiter = EventWaiter(stored_ids=storage.stored_ids)
    waiter.expect("e1")
    waiter.on_event(event("e1"))
    waiter.forget("e1")  # the request timed out
    confirming = asyncio.create_task(waiter._confirm())
    await asyncio.sleep(0.1)
    confirming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await confirming
    assert storage.asked == []


async def test_without_shared_storage_answered_when_finished() -> None:
    waiter = EventWaiter()
    future = waiter.expect("e1")
    waiter.on_event(event("e1"))
    assert future.done() and waiter.pending == {}
