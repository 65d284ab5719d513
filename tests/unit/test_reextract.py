"""The re-extraction replay over an in-memory samples topic: every sample once, offsets
committed only after their results were written, exact limits, stop and resume. The same task
against a real broker: tests/integration/test_reextraction.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import schemas
from processors.image import encode_jpeg
from processors.types import Descriptors, ImageBGR
from schemas.records import Face
from streams import cli
from streams.kafka import topics
from streams.settings import Settings
from streams.worker.replay import Progress, ReextractionTask

TOPIC = "t.samples"


@dataclass
class Message:
    """The fields of aiokafka's ConsumerRecord that the task reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Journal:
    """What the task did, in order: results sent, flushes, commits."""

    sent: list[tuple[str, bytes | None, Any]] = field(default_factory=list)  # topic, key, value
    steps: list[tuple[str, Any]] = field(default_factory=list)

    def logged(self) -> list[dict[str, Any]]:
        codec = schemas.codec("Reextraction")
        log = topics.topic_name(Settings().kafka, topics.REEXTRACTIONS)
        return [codec.decode(value) for topic, _, value in self.sent if topic == log]


class SamplesTopic:
    """Consumer side of an in-memory topic, from given positions; commits go to the journal."""

    def __init__(
        self, partitions: list[list[Message]], journal: Journal, start: dict[int, int]
    ) -> None:
        self.partitions = partitions
        self.journal = journal
        self.positions = {TopicPartition(TOPIC, p): start.get(p, 0) for p in range(len(partitions))}

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Message]]:
        taken: dict[TopicPartition, list[Message]] = {}
        for tp, position in self.positions.items():
            records = self.partitions[tp.partition][position : position + max_records]
            if records:
                taken[tp] = records
                self.positions[tp] += len(records)
                max_records -= len(records)
        return taken

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.journal.steps.append(("commit", dict(offsets)))

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.partitions[tp.partition])

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


@dataclass
class Written:
    offset: int


class ResultsTopic:
    """Producer side: every send is kept; a flush marks how many were written by then."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        self.journal.sent.append((topic, key, value))
        written: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        written.set_result(Written(len(self.journal.sent)))
        return written

    async def flush(self) -> None:
        self.journal.steps.append(("flush", len(self.journal.sent)))


class MeanColour:
    """A stand-in extractor: the sample's mean colour, repeated to the dimension of version 2."""

    version = 2
    dimension = 128

    def extract(self, samples: list[ImageBGR]) -> Descriptors:
        means = [np.resize(s.reshape(-1, 3).mean(axis=0) + 1, self.dimension) for s in samples]
        vectors = np.array(means, np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def sample(index: int) -> Message:
    sample_id = f"s{index}"
    value = schemas.codec("Sample").encode(
        {
            "sample_id": sample_id,
            "account_id": "a",
            "event_id": f"e{index}",
            "face_index": 0,
            "created_at": datetime.now(UTC),
            "image": encode_jpeg(np.full((250, 250, 3), index % 256, np.uint8)),
        }
    )
    return Message(TOPIC, 0, 0, sample_id.encode(), value)


def topic(messages: list[Message], partitions: int = 2) -> list[list[Message]]:
    """The messages spread over partitions by index, each numbered by its partition offset."""
    laid: list[list[Message]] = [[] for _ in range(partitions)]
    for index, message in enumerate(messages):
        part = laid[index % partitions]
        part.append(Message(TOPIC, index % partitions, len(part), message.key, message.value))
    return laid


def task(**options: Any) -> ReextractionTask:
    return ReextractionTask(Settings(), 2, "to-v2", lanes=2, **options)


async def replay(
    job: ReextractionTask,
    partitions: list[list[Message]],
    journal: Journal,
    start: dict[int, int] | None = None,
    on_progress: Any = lambda p: None,
) -> Progress:
    samples = SamplesTopic(partitions, journal, start or {})
    return await job.replay(
        cast(AIOKafkaConsumer, samples),
        cast(AIOKafkaProducer, ResultsTopic(journal)),
        MeanColour(),
        on_progress,
    )


def committed(journal: Journal) -> dict[int, int]:
    positions: dict[int, int] = {}
    for step, offsets in journal.steps:
        if step == "commit":
            positions |= {tp.partition: offset for tp, offset in offsets.items()}
    return positions


def sample_ids_below(partitions: list[list[Message]], positions: dict[int, int]) -> set[str]:
    return {
        m.key.decode()
        for p, records in enumerate(partitions)
        for m in records[: positions.get(p, 0)]
        if m.key is not None
    }


async def test_every_sample_once_and_commits_only_after_their_results_are_written() -> None:
    messages = [sample(i) for i in range(300)]
    messages += [Message(TOPIC, 0, 0, b"gone", None), Message(TOPIC, 0, 0, b"bad", b"\x00junk")]
    partitions = topic(messages)
    journal = Journal()
    job = task(batch_size=64)
    face: Face = {
        "face_id": "f1",
        "account_id": "a",
        "list_ids": [],
        "user_data": "",
        "event_id": None,
        "sample_id": "s7",
        "created_at": datetime.now(UTC),
        "descriptors": [{"version": 1, "vector": np.full(128, 0.5, "<f4").tobytes()}],
        "attributes": None,
        "avatar_sample_id": None,
    }
    job.directory.apply_face("f1", face, offset=0)

    progress = await replay(job, partitions, journal)

    assert (progress.status, progress.processed, progress.errors) == ("done", 300, 1)
    assert progress.not_reextractable == 1  # the deleted sample
    logged = journal.logged()
    assert sorted(e["sample_id"] for e in logged if e["descriptor"]) == sorted(
        f"s{i}" for i in range(300)
    )
    codes = {e["sample_id"]: e["error_code"] for e in logged if e["error_code"]}
    assert codes == {"gone": "deleted_sample", "bad": "bad_wire_format"}
    assert committed(journal) == {0: len(partitions[0]), 1: len(partitions[1])}
    # A commit covers only samples whose results a flush before it had written.
    flushed: set[str] = set()
    for step, value in journal.steps:
        if step == "flush":
            flushed = {e["sample_id"] for e in journal.logged()[:value]}
        if step == "commit":
            positions = {tp.partition: offset for tp, offset in value.items()}
            assert sample_ids_below(partitions, positions) <= flushed | {"gone", "bad"}
    # The face made from s7 got version 2 beside version 1.
    updated = job.directory.faces["f1"]
    assert [d["version"] for d in updated["descriptors"]] == [1, 2]


@pytest.mark.parametrize("limit", [1, 10, 64, 65])
async def test_a_limit_is_exact(limit: int) -> None:
    partitions = topic([sample(i) for i in range(200)])
    journal = Journal()

    progress = await replay(task(batch_size=16, limit=limit), partitions, journal)

    assert (progress.status, progress.processed) == ("stopped", limit)
    assert sum(committed(journal).values()) == limit
    assert len(journal.logged()) == limit


async def test_stopped_midway_then_resumed_none_twice_none_skipped() -> None:
    partitions = topic([sample(i) for i in range(500)], partitions=3)
    first_journal = Journal()
    first = task(batch_size=32)

    def stop_after_first_batch(progress: Progress) -> None:
        if progress.processed:
            first.stop()

    stopped = await replay(first, partitions, first_journal, on_progress=stop_after_first_batch)
    assert stopped.status == "stopped" and 0 < stopped.processed < 500
    positions = committed(first_journal)
    assert sum(positions.values()) == stopped.processed  # what was done is what was committed

    second_journal = Journal()
    done = await replay(task(batch_size=32), partitions, second_journal, start=positions)
    assert done.status == "done" and stopped.processed + done.processed == 500
    ids = [e["sample_id"] for e in first_journal.logged() + second_journal.logged()]
    assert sorted(ids) == sorted(f"s{i}" for i in range(500))


@pytest.mark.parametrize(
    ("option", "refusal"),
    [
        (["--lanes", "0"], "--lanes: 0 is not in [1..64]"),
        (["--lanes", "65"], "--lanes: 65 is not in [1..64]"),
        (["--lanes", "two"], "--lanes: 'two' is not an integer"),
        (["--batch-size", "0"], "--batch-size: 0 is not in [1..4096]"),
        (["--limit", "-3"], "--limit: -3 is not in [1..inf]"),
    ],
)
def test_the_command_refuses_bad_numbers_with_the_reason(
    option: list[str], refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(["reextract", "--version", "2", *option])
    assert exited.value.code == 2
    assert refusal in capsys.readouterr().err


def test_the_command_passes_good_numbers_on() -> None:
    args = cli.parser().parse_args(
        ["reextract", "--version", "2", "--lanes", "3", "--batch-size", "64", "--limit", "9"]
    )
    assert (args.lanes, args.batch_size, args.limit) == (3, 64, 9)
