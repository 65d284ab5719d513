"""The match stage through its runner and the in-memory port: the faces of a batch's events are
searched in one gallery call, off the event loop, with the results of one event at a time, and an
enrollment is matchable by the events after it in the same batch."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from schemas.records import Descriptors, Enrollment, Event, Face, Match
from streams.control.monitoring import Monitor
from streams.kafka import topics
from streams.kafka.gallery import GalleryIndex, SearchRequest
from streams.settings import LiveSettings, MiB, Settings
from streams.worker.runner import StageRunner
from streams.worker.stages import MatchStage
from streams.worker.testing import InMemoryPort, Message, Position
from tests.sink_records import descriptors

ACCOUNT, OTHER = str(uuid.uuid4()), str(uuid.uuid4())
DIM = 128
rng = np.random.default_rng(11)


class SpyGallery(GalleryIndex):
    """Records each search_batch call's requests; can sleep in it or break on an account."""

    def __init__(self, sleep_s: float = 0.0, breaks_on: str | None = None) -> None:
        super().__init__()
        self.calls: list[list[SearchRequest]] = []
        self.sleep_s, self.breaks_on = sleep_s, breaks_on

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[list[Match]]:
        self.calls.append(list(requests))
        if any(r.account_id == self.breaks_on for r in requests):
            raise RuntimeError("the search blew up")
        time.sleep(self.sleep_s)
        return super().search_batch(requests)


def unit() -> np.ndarray:
    vector = rng.standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def face(vector: np.ndarray, lists: list[str], account: str = ACCOUNT) -> Face:
    face_id = str(uuid.uuid4())
    return {
        "face_id": face_id,
        "account_id": account,
        "list_ids": lists,
        "user_data": f"user {face_id}",
        "event_id": None,
        "sample_id": None,
        "created_at": datetime.now(UTC),
        "descriptors": [{"version": 1, "vector": vector.astype("<f4").tobytes()}],
        "attributes": None,
        "avatar_sample_id": None,
    }


def vector_of(known: Face) -> np.ndarray:
    return np.frombuffer(known["descriptors"][0]["vector"], dtype="<f4")


def noisy(vector: np.ndarray) -> np.ndarray:
    return vector + 0.05 * unit()


def runner(gallery: GalleryIndex) -> tuple[StageRunner[Descriptors], InMemoryPort]:
    live = LiveSettings(Settings())
    port = InMemoryPort(MiB)
    stage = MatchStage(gallery, live)
    return StageRunner(stage, topics.DESCRIPTORS, port, Monitor(live), MiB), port


def messages(records: Sequence[Descriptors]) -> list[Message]:
    return [
        Message(None, topics.DESCRIPTORS.encode(r), Position("t.descriptors", 0, offset))
        for offset, r in enumerate(records)
    ]


def events(port: InMemoryPort) -> list[Event]:
    return [event for _, event in port.sink["events"]]


def matched(event: Event) -> list[tuple[list[str], int | None]]:
    return [([m["face_id"] for m in f["matches"]], f["matched_version"]) for f in event["faces"]]


def test_a_batch_is_searched_in_one_call_with_the_results_of_one_event_at_a_time() -> None:
    gallery = SpyGallery()
    known = [face(unit(), [["a"], ["b"], ["a", "b"]][i % 3]) for i in range(60)]
    stranger = face(unit(), ["a"], account=OTHER)
    for known_face in [*known, stranger]:
        gallery.apply(known_face["face_id"], known_face)
    plans = [["a"], ["b"], ["a", "b"], [], ["a"], ["b"]]  # N = 6 events, F = 3 faces each
    # Each face of an event with lists is a near copy of a distinct known face of its first list.
    targets = [
        [[k for k in known if lists[0] in k["list_ids"]][3 * j + f] for f in range(3)]
        if lists
        else []
        for j, lists in enumerate(plans)
    ]
    records = [
        descriptors([noisy(vector_of(t)) for t in aimed] or [unit()] * 3, lists, ACCOUNT)
        for lists, aimed in zip(plans, targets, strict=True)
    ]
    batch, port = runner(gallery)
    asyncio.run(batch.run(messages(records)))
    (requests,) = gallery.calls  # one search for the whole batch
    assert len(requests) == 3 * 5  # every face of the events with lists, in order
    assert [r.list_ids for r in requests] == [tuple(p) for p in plans if p for _ in range(3)]

    alone, alone_port = runner(gallery)
    gallery.calls.clear()
    for record in records:
        asyncio.run(alone.run(messages([record])))
    assert len(gallery.calls) == 5  # the event without lists searches nothing
    assert [matched(e) for e in events(port)] == [matched(e) for e in events(alone_port)]
    for aimed, event in zip(targets, events(port), strict=True):
        assert event["status"] == "ok" and len(event["faces"]) == 3
        if not aimed:
            assert matched(event) == [([], None)] * 3
        for target, matched_face in zip(aimed, event["faces"], strict=False):
            (best,) = matched_face["matches"]  # the others are far below the threshold
            assert (best["face_id"], best["user_data"]) == (target["face_id"], target["user_data"])
            assert matched_face["matched_version"] == 1


def test_an_event_matches_what_an_earlier_event_of_its_batch_enrolled() -> None:
    gallery = SpyGallery()
    vector = unit()
    enroll: Enrollment = {"list_id": "staff", "user_data": "ann", "face_id": None}
    taken = face(unit(), ["elsewhere"], account=OTHER)
    gallery.apply(taken["face_id"], taken)
    refused: Enrollment = {"list_id": "staff", "user_data": "eve", "face_id": taken["face_id"]}
    records = [
        descriptors([noisy(vector)], ["staff"], ACCOUNT),  # before ann is known
        descriptors([vector], [], ACCOUNT, enroll),
        descriptors([noisy(vector)], ["staff"], ACCOUNT),
        descriptors([noisy(vector)], ["staff"], ACCOUNT),
        descriptors([unit()], [], ACCOUNT, refused),  # another account's face id
        descriptors([noisy(vector)], ["staff"], ACCOUNT),
    ]
    batch, port = runner(gallery)
    asyncio.run(batch.run(messages(records)))
    assert [len(requests) for requests in gallery.calls] == [1, 2, 1]  # split at enrollments
    (ann,) = [face_id for face_id, _ in port.sink["faces"]]
    got = events(port)
    assert [e["context"]["event_id"] for e in got] == [r["context"]["event_id"] for r in records]
    assert got[0]["faces"][0]["matches"] == []
    assert got[1]["faces"][0]["enrolled_face_id"] == ann
    for event in (got[2], got[3], got[5]):
        (best,) = event["faces"][0]["matches"]
        assert (best["face_id"], best["user_data"]) == (ann, "ann")
    assert (got[4]["status"], got[4]["error_code"]) == ("error", "forbidden")


def test_a_search_that_breaks_its_batch_fails_its_event_alone() -> None:
    gallery = SpyGallery(breaks_on=OTHER)
    vector = unit()
    enroll: Enrollment = {"list_id": "staff", "user_data": "ann", "face_id": None}
    records = [
        descriptors([vector], [], ACCOUNT, enroll),
        descriptors([noisy(vector)], ["staff"], ACCOUNT),
        descriptors([unit()], ["staff"], OTHER),
        descriptors([noisy(vector)], ["staff"], ACCOUNT),
    ]
    batch, port = runner(gallery)
    asyncio.run(batch.run(messages(records)))
    by_id = {e["context"]["event_id"]: e for e in events(port)}
    statuses = [by_id[r["context"]["event_id"]]["status"] for r in records]
    assert statuses == ["ok", "ok", "error", "ok"]
    assert by_id[records[2]["context"]["event_id"]]["error_code"] == "internal_error"
    assert len(port.sink["dead_letters"]) == 1
    assert len(port.sink["faces"]) == 1  # the enrollment, sent once
    for record in (records[1], records[3]):
        assert by_id[record["context"]["event_id"]]["faces"][0]["matches"][0]["user_data"] == "ann"


def test_the_event_loop_goes_on_during_a_long_search() -> None:
    gallery = SpyGallery(sleep_s=0.3)
    known = face(unit(), ["a"])
    gallery.apply(known["face_id"], known)
    batch, port = runner(gallery)

    async def run_while_ticking() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(tick())
        await batch.run(messages([descriptors([unit()], ["a"], ACCOUNT)]))
        ticking.cancel()
        return ticks

    assert asyncio.run(run_while_ticking()) >= 10  # 0 while the search held the loop
    assert len(gallery.calls) == 1 and events(port)[0]["status"] == "ok"


def test_faces_applied_on_the_loop_while_the_stage_searches_in_its_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gallery = GalleryIndex()
    for _ in range(500):
        record = face(unit(), ["a"])
        gallery.apply(record["face_id"], record)
    hot = [unit() for _ in range(50)]  # faces that come and go, and that the events match
    batch, port = runner(gallery)

    async def follow_while_matching() -> None:
        done = False

        async def follower() -> None:  # as the faces follower does, on the loop
            while not done:
                churn = [face(vector, ["a", "b"]) for vector in hot]
                for record in churn:
                    gallery.apply(record["face_id"], record)
                for record in churn:
                    gallery.apply(record["face_id"], None)
                await asyncio.sleep(0)

        following = asyncio.create_task(follower())
        for i in range(50):
            records = [
                descriptors([noisy(hot[(i + j + f) % 50]) for f in range(4)], ["a", "b"], ACCOUNT)
                for j in range(8)
            ]
            await batch.run(messages(records))
        done = True
        await following

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns often: a race would show
    try:
        asyncio.run(follow_while_matching())
    finally:
        sys.setswitchinterval(interval)
    assert [e["status"] for e in events(port)] == ["ok"] * 400
    assert "retrying one by one" not in caplog.text  # no batch broke either
    assert len(gallery) == 500
