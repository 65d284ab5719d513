"""Followers of the compacted topics against bad records, and enrollment across accounts,
without a broker: the reader is fed through a stand-in consumer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from aiokafka import ConsumerRecord, TopicPartition

import schemas
from schemas.records import Enrollment
from streams.control.config import ConfigState, shown
from streams.kafka import reader, topics
from streams.kafka.directory import Directory
from streams.kafka.gallery import GalleryIndex, InvalidRecord, SearchRequest
from streams.kafka.reader import TopicReader, keep_following
from streams.settings import LiveSettings, Settings
from streams.worker.stages import MatchStage
from tests.sink_records import descriptors

A = "6d071cca-fda5-4a03-84d5-5bea65904480"
B = "0dde5158-e643-45a6-8a4d-ad42448a913b"
Record = Any  # test records, some partial on purpose (a geometry of {})


def vector(seed: int) -> bytes:
    return np.random.default_rng(seed).normal(size=128).astype("<f4").tobytes()


PROBE = np.frombuffer(vector(42), "<f4")  # the face enrollments bring


def face(face_id: str, account: str = A, lists: tuple[str, ...] = ("l1",), **kw: Any) -> Record:
    return {
        "face_id": face_id,
        "account_id": account,
        "list_ids": list(lists),
        "user_data": f"{face_id} of {account[:4]}",
        "event_id": None,
        "sample_id": None,
        "created_at": datetime.now(UTC),
        "descriptors": [{"version": 1, "vector": vector(hash(face_id) % 1000)}],
    } | kw


def the_list(list_id: str, account: str) -> Record:
    return {
        "list_id": list_id,
        "account_id": account,
        "user_data": None,
        "created_at": datetime.now(UTC),
    }


def found(gallery: GalleryIndex, account: str, probe: bytes, lists: list[str]) -> list[str]:
    query = np.frombuffer(probe, "<f4")
    request = SearchRequest(account, 1, query, list_ids=tuple(lists), limit=5, threshold=0.9)
    (matches,) = gallery.search_batch([request])
    return [m["face_id"] for m in matches]


BAD_DESCRIPTORS = [
    [{"version": 1, "vector": b"12345"}],  # 5 bytes
    [{"version": 7, "vector": vector(1)}],  # an unknown version
    [{"version": 1, "vector": np.full(128, np.nan, "<f4").tobytes()}],
    [{"version": 1, "vector": bytes(512)}],  # all zeros: no direction
    [{"version": 1, "vector": vector(1)}, {"version": 1, "vector": vector(2)}],
]


@pytest.mark.parametrize("descriptors", BAD_DESCRIPTORS)
def test_the_gallery_refuses_a_bad_face_and_keeps_its_previous_state(
    descriptors: list[Record],
) -> None:
    gallery = GalleryIndex()
    good = face("f1")
    gallery.apply("f1", good)
    with pytest.raises(InvalidRecord):
        gallery.apply("f1", face("f1", descriptors=descriptors))
    with pytest.raises(InvalidRecord):
        gallery.apply("f2", face("f2", account=""))
    assert len(gallery) == 1
    assert gallery.coverage(A, 1) == (1, 1)
    assert found(gallery, A, good["descriptors"][0]["vector"], ["l1"]) == ["f1"]


def test_the_directory_refuses_a_bad_face_and_filters_lists_by_account() -> None:
    directory = Directory()
    directory.apply_face("a1", face("a1"), offset=0)
    directory.apply_face("b1", face("b1", account=B), offset=1)  # B names A's list id "l1"
    directory.apply_list("l1", the_list("l1", A), offset=0)
    with pytest.raises(InvalidRecord):
        directory.apply_face("a1", face("a1", descriptors=BAD_DESCRIPTORS[0]), offset=2)
    with pytest.raises(InvalidRecord):
        directory.apply_list("l2", the_list("l2", ""), offset=1)
    assert directory.faces["a1"]["descriptors"] == face("a1")["descriptors"]
    assert [f["face_id"] for f in directory.faces_in(A, "l1")] == ["a1"]
    assert [f["face_id"] for f in directory.faces_in(B, "l1")] == ["b1"]
    assert sorted(directory.lists) == ["l1"]


class FakeConsumer:
    """Hands out the given batches, one per getmany."""

    def __init__(self, batches: list[list[ConsumerRecord[bytes, bytes]]]) -> None:
        self.batches = batches

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batch = self.batches.pop(0) if self.batches else []
        return {TopicPartition("t", 0): batch} if batch else {}


def message(offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        "t", 0, offset, 0, 0, key, value, None, len(key or b""), len(value or b""), []
    )


def fed(spec: topics.TopicSpec, *messages: ConsumerRecord[bytes, bytes]) -> TopicReader:
    topic_reader = TopicReader(Settings(), spec)
    topic_reader._consumer = FakeConsumer([list(messages)])
    return topic_reader


def encoded(name: str, record: Record) -> bytes:
    return schemas.codec(name).encode(record)


async def test_the_faces_follower_skips_every_bad_record_and_applies_the_rest() -> None:
    good = face("f1")
    faces = fed(
        topics.FACES,
        message(0, b"f1", encoded("Face", good)),
        message(1, b"f1", encoded("Face", face("f1", descriptors=BAD_DESCRIPTORS[0]))),
        message(2, None, encoded("Face", face("f3"))),  # no key
        message(3, b"\xff\xfe", encoded("Face", face("f4"))),  # a key not UTF-8
        message(4, b"f5", b"\x00garbage"),
        message(5, b"f6", encoded("Face", face("f6"))[:40]),  # truncated
        message(6, b"f7", None),  # a tombstone: deletes nothing here, applied
    )
    directory = Directory()
    await faces.apply_each(directory.apply_face, timeout=0)
    assert faces.skipped == 5
    assert sorted(directory.faces) == ["f1"]
    assert directory.gallery.coverage(A, 1) == (1, 1)


async def test_readers_of_other_topics_skip_null_values_and_garbage() -> None:
    events = fed(
        topics.EVENTS,
        message(0, b"e0", None),
        message(1, b"\xff", b"\x01\x02\x03"),
        message(2, None, b"\x00garbage"),
    )
    assert await events.read(timeout=0) == []
    assert events.skipped == 3


async def test_config_messages_with_keys_not_utf8_are_refused_and_can_be_removed() -> None:
    config = fed(topics.CONFIG, message(0, b"\xffmatch", b"\x00garbage"))
    state = ConfigState()
    for m in await config.read_raw(timeout=0):
        state.apply(m.key, m.value)
    assert state.bad_keys == {"\\xffmatch": b"\xffmatch"}
    assert "not UTF-8" in state.rejected["\\xffmatch"]
    state.apply(b"\xffmatch", None)  # what `config reset --bad-keys` sends
    assert (state.bad_keys, state.rejected) == ({}, {})


def test_secrets_are_hidden_in_what_config_set_and_history_print() -> None:
    url = "clickhouse://app:s3cret@ch:9000"
    printed = shown("storage", {"clickhouse_url": url, "batch_size": 5})
    assert json.loads(printed) == {"clickhouse_url": "***", "batch_size": 5}


async def test_a_follower_that_fails_starts_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "RETRY_FIRST_S", 0.01)
    runs: list[int] = []
    again = asyncio.Event()

    async def follow() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("the broker went away")
        again.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(keep_following("test", follow))
    await asyncio.wait_for(again.wait(), 5)
    assert len(runs) == 2 and not task.done()
    task.cancel()


@pytest.fixture
def stage() -> MatchStage:
    gallery = GalleryIndex()
    gallery.apply("a1", face("a1", lists=("la",)))
    gallery.apply_list("la", the_list("la", A))
    return MatchStage(gallery, LiveSettings(Settings()))


@pytest.mark.parametrize(
    "enroll",
    [
        {"list_id": "lb", "user_data": "B's", "face_id": "a1"},  # A's face
        {"list_id": "la", "user_data": "B's", "face_id": None},  # A's list
    ],
)
def test_an_enrollment_naming_another_accounts_face_or_list_is_forbidden(
    stage: MatchStage, enroll: Record
) -> None:
    (result,) = stage.run([descriptors([PROBE], [], B, enroll)])
    assert result.error is not None and result.error.code == "forbidden"
    assert result.emits == []
    assert (stage.gallery.face_owner("a1"), len(stage.gallery)) == (A, 1)
    assert stage.gallery.coverage(B, 1) == (0, 0)
    probe = face("a1")["descriptors"][0]["vector"]
    assert found(stage.gallery, A, probe, ["la"]) == ["a1"]


def test_an_account_enrolls_into_its_own_list_and_one_nobody_owns(stage: MatchStage) -> None:
    mine: Enrollment = {"list_id": "la", "user_data": "A's", "face_id": "a1"}
    unknown: Enrollment = {"list_id": "nobody's", "user_data": "B's", "face_id": "b1"}
    results = stage.run([descriptors([PROBE], [], A, mine), descriptors([PROBE], [], B, unknown)])
    assert [r.error for r in results] == [None, None]
    assert (stage.gallery.face_owner("a1"), stage.gallery.face_owner("b1")) == (A, B)
