"""The matchers' gallery follower without a broker: its readers are fed by stand-in consumers.
It applies off the event loop, in the order read, skipping what it cannot use, and says the
gallery is loaded only once all of it is applied."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.kafka import topics
from streams.kafka.gallery import FaceChanges, GalleryIndex, InvalidRecord
from streams.kafka.reader import Message, TopicReader
from streams.settings import Settings
from streams.worker import gallery_follower
from streams.worker.gallery_follower import GalleryFollower
from tests.unit.test_followers import BAD_DESCRIPTORS, A, encoded, face, message, the_list


class FakeConsumer:
    """Hands out the given batches, one per getmany; with none left it waits as long as
    getmany would. Its position is the offset after the last record handed out."""

    def __init__(self, batches: list[list[Message]]) -> None:
        self.batches = batches
        self.read_to = 0

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Message]]:
        if not self.batches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch = self.batches.pop(0)
        self.read_to = batch[-1].offset + 1
        return {TopicPartition("t", 0): batch}

    async def position(self, tp: TopicPartition) -> int:
        return self.read_to

    async def stop(self) -> None:
        pass


class SlowGallery(GalleryIndex):
    """Notes the faces applied, in order, each fetch taking `apply_s` (holding no lock of the
    loop's: as an apply waiting on a search would)."""

    def __init__(self, apply_s: float) -> None:
        super().__init__()
        self.apply_s = apply_s
        self.applied: list[str] = []

    def apply_changes(self, changes: FaceChanges) -> list[tuple[int, InvalidRecord]]:
        time.sleep(self.apply_s)
        refused = super().apply_changes(changes)
        skipped = {i for i, _ in refused}
        self.applied += [f for i, f in enumerate(changes.face_ids) if i not in skipped]
        return refused


def fed(monkeypatch: pytest.MonkeyPatch, faces: list[list[Message]], lists: list[Message]) -> None:
    """Readers of faces and lists get these batches, the topics ending after the last record."""
    consumers = {
        topics.topic_name(Settings().kafka, topics.FACES): FakeConsumer(faces),
        topics.topic_name(Settings().kafka, topics.LISTS): FakeConsumer([lists] if lists else []),
    }

    async def enter(reader: TopicReader) -> TopicReader:
        consumer = consumers[reader.name]
        reader._consumer = consumer
        end = max((b[-1].offset + 1 for b in consumer.batches if b), default=0)
        reader._end = {TopicPartition("t", 0): end}
        return reader

    monkeypatch.setattr(TopicReader, "__aenter__", enter)


def face_message(offset: int, face_id: str, **kw: Any) -> Message:
    return message(offset, face_id.encode(), encoded("Face", face(face_id, **kw)))


async def loaded(follower: GalleryFollower) -> asyncio.Task[None]:
    task = asyncio.create_task(follower.follow())
    await asyncio.wait_for(follower.loaded.wait(), 10)
    return task


@pytest.mark.parametrize("decoded_by", ["the gallery's thread", "a process pool"])
async def test_it_applies_off_the_loop_in_order_and_is_loaded_once_all_is_applied(
    decoded_by: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pools: list[ProcessPoolExecutor] = []

    class Pool(ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(gallery_follower, "ProcessPoolExecutor", Pool)
    if decoded_by == "a process pool":  # as a load of many faces is
        monkeypatch.setattr(gallery_follower, "DECODERS_FROM", 1)
    fed(
        monkeypatch,
        faces=[
            [
                face_message(0, "f1", lists=("l1",)),
                face_message(1, "f2", descriptors=BAD_DESCRIPTORS[0]),  # refused by the gallery
                face_message(2, "f2"),
                message(3, b"f3", b"\x00garbage"),  # does not decode
            ],
            [
                face_message(4, "f1", lists=("l2",)),
                message(5, b"f2", None),  # f2 deleted
                message(6, b"\xfff4", encoded("Face", face("f4"))),  # a key that is not UTF-8
            ],
        ],
        lists=[
            message(0, b"l1", encoded("List", the_list("l1", A))),
            message(1, b"l2", encoded("List", the_list("l2", ""))),  # no account: refused
        ],
    )
    gallery = SlowGallery(apply_s=0.3)
    follower = GalleryFollower(Settings(), gallery, asyncio.Event())
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(tick())
    caplog.set_level(logging.INFO)
    task = await loaded(follower)
    ticking.cancel()
    task.cancel()

    # Loaded only after the last apply: every good record in offset order, nothing after.
    assert gallery.applied == ["f1", "f2", "f1", "f2"]
    assert (len(gallery), gallery.face_owner("f1"), gallery.face_owner("f2")) == (1, A, None)
    assert (gallery.list_owner("l1"), gallery.list_owner("l2")) == (A, None)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("gallery loaded: 1 faces") == 1
    assert len(pools) == (decoded_by == "a process pool")
    assert sum(m.startswith("skipped a record of") for m in messages) == 4
    assert any("the key is not UTF-8" in m for m in messages)
    # Two fetches applied in 0.3 s each ran meanwhile; on the loop each would stall it so long.
    assert len(ticks) > 30
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.1


async def test_loading_is_not_paced_by_a_quiet_lists_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = [[face_message(i, f"f{i}")] for i in range(40)]
    fed(monkeypatch, faces=batches, lists=[])
    follower = GalleryFollower(Settings(), GalleryIndex(), asyncio.Event())
    started = time.monotonic()
    task = await loaded(follower)
    task.cancel()
    # Waiting 50 ms on the empty lists topic after each batch would take 2 s.
    assert len(follower.gallery) == 40
    assert time.monotonic() - started < 1.0
