"""Poison on every stage topic of a real worker: each poison message ends as exactly one dead
letter (and an error event when its event is known), every good image as exactly one event row
in ClickHouse, and the worker lives on. Then a kill -9 of the worker, restarted in the same
supervisor slot: it takes its partitions back long before its session would have expired."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import schemas
from sinks.clickhouse import DriverClient
from streams.control.launch import WorkerProcess, free_port
from streams.control.supervisor import SLOT_ENV
from streams.kafka import topics
from streams.kafka.images import ENVELOPE_BYTES
from streams.kafka.reader import TopicReader
from streams.settings import Settings
from tests.integration.conftest import made
from tests.integration.streaming import Message, produce
from tests.integration.test_pipeline import people, send_and_collect
from tests.unit.test_stage_faults import detections

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 45  # far longer than a restart may take
GOOD_IMAGES = 24

Record = dict[str, Any]


class Private:
    """A worker of its own (topics, database, consumer group), supervised-slot 0."""

    def __init__(self, stack_env: dict[str, str], folder: Path) -> None:
        run = uuid.uuid4().hex[:8]
        self.env = stack_env | {
            "FACESTREAM_KAFKA__TOPIC_PREFIX": f"poison{run}",
            "FACESTREAM_KAFKA__SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
            "FACESTREAM_STORAGE__DATABASE": f"poison{run}",
            "FACESTREAM_WORKER__WEB_PORT": str(free_port()),
            SLOT_ENV: "0",
        }
        self.settings = made(self.env)
        self.folder = folder
        self.starts = 0
        self.worker = self.start()

    def start(self) -> WorkerProcess:
        self.starts += 1
        return WorkerProcess(self.env, self.folder / f"worker{self.starts}.log")


@pytest.fixture(scope="module")
def private(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Private]:
    deployment = Private(stack_env, tmp_path_factory.mktemp("poison"))
    try:
        deployment.worker.wait_ready()
        yield deployment
    finally:
        deployment.worker.stop()


def image(account: str, data: bytes | None = b"", created_at: datetime | None = None) -> Record:
    return {
        "context": detections()["context"]
        | {"account_id": account, "created_at": created_at or datetime.now(UTC)},
        "data": data,
        "data_ref": None,
        "min_quality": None,
        "estimate_liveness": None,
    }


async def letters_until(settings: Settings, count: int, timeout: float) -> list[Record]:
    """Every dead letter of the deployment, once `count` came (and a little longer, so that
    one too many would show)."""
    found: list[Record] = []
    async with TopicReader(settings, topics.DEAD_LETTERS, from_beginning=True) as letters:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found += [value for _, value in await letters.read()]
            if len(found) >= count:
                deadline = min(deadline, time.monotonic() + 3)
    return found


def wait_count(client: DriverClient, sql: str, count: int, timeout: float = 90) -> Record:
    deadline = time.monotonic() + timeout
    while True:
        (row,) = client.query(sql)
        if row["n"] >= count or time.monotonic() > deadline:
            return row
        time.sleep(0.5)


@pytest.mark.slow
def test_poison_on_every_stage_topic_is_dead_lettered_and_no_image_is_lost(
    private: Private, clickhouse: DriverClient, testdata_dir: Path
) -> None:
    settings, account = private.settings, str(uuid.uuid4())
    photo = people(testdata_dir)["John_Simm"][2].read_bytes()
    codec = {name: schemas.codec(name) for name in ("Image", "Detections", "LivenessResults")}
    known: dict[str, str] = {}  # event id: the error code its error event must carry

    def known_bad(record: Record) -> Record:
        known[record["context"]["event_id"]] = "out_of_range"
        return record

    liveness_face = {"liveness": {"probability": 0.5, "quality": 0.5}}
    bad_liveness = known_bad(detections(geometry={"index": 70000}))
    bad_liveness["faces"] = [
        {k: v for k, v in bad_liveness["faces"][0].items() if k != "liveness_input"} | liveness_face
    ]
    bad_descriptors = known_bad(detections())
    bad_descriptors["descriptor_version"] = 1
    bad_descriptors["faces"] = [
        {
            "geometry": bad_descriptors["faces"][0]["geometry"],
            "sample_id": "s",
            "descriptor": bytes(5),  # not 128 float32
            "other_descriptors": [],
        }
        | liveness_face
    ]
    poison: list[tuple[topics.TopicSpec, bytes | None, bytes | None, str]] = [
        (topics.IMAGES, b"null", None, "null_value"),
        (topics.IMAGES, b"\xff\xfe", b"\x00not avro", "bad_wire_format"),
        # Random bytes as large as the broker takes: the letter must still fit.
        (
            topics.IMAGES,
            None,
            b"\x00" + os.urandom(settings.kafka.max_message_bytes - ENVELOPE_BYTES),
            "bad_wire_format",
        ),
        (topics.IMAGES, None, schemas.codec("Sample").encode(sample(account)), "schema_mismatch"),
        (topics.IMAGES, None, bytes((schemas.MAGIC, 1)) + b"\xff\xff\xff", "schema_mismatch"),
        (
            topics.IMAGES,
            None,
            codec["Image"].encode(image(account, photo, datetime(1900, 1, 1, tzinfo=UTC))),
            "out_of_range",
        ),
        (topics.DETECTIONS, b"null", None, "null_value"),
        (
            topics.DETECTIONS,
            None,
            codec["Detections"].encode(known_bad(detections(liveness_input=bytes(100)))),
            "out_of_range",
        ),
        (topics.LIVENESS, None, codec["LivenessResults"].encode(bad_liveness), "out_of_range"),
        (topics.DESCRIPTORS, None, b"\x00garbage", "bad_wire_format"),
        (
            topics.DESCRIPTORS,
            None,
            schemas.codec("Descriptors").encode(bad_descriptors),
            "out_of_range",
        ),
    ]
    good: list[str] = []
    messages: list[Message] = []
    for i in range(GOOD_IMAGES):
        record = image(account, photo)
        good.append(record["context"]["event_id"])
        key = b"\xff\xfe\xfd" if i == 1 else record["context"]["event_id"].encode()
        messages.append((topics.IMAGES, key, codec["Image"].encode(record)))
        if i < len(poison):
            spec, key, value, _ = poison[i]
            messages.append((spec, key, value))

    asyncio.run(produce(settings, messages))
    dead = asyncio.run(letters_until(settings, len(poison), timeout=120))

    expected = sorted((spec.suffix, code) for spec, _, _, code in poison)
    got = sorted((d["topic"].rsplit(".", 1)[1], d["error_code"]) for d in dead)
    assert got == expected, dead
    assert {d["event_id"] for d in dead} - {None} == set(known)
    assert all(len(d["payload"] or b"") <= 64 * 1024 for d in dead)
    (huge,) = [d for d in dead if (d["payload_size"] or 0) > 64 * 1024]
    assert huge["payload_size"] == settings.kafka.max_message_bytes - ENVELOPE_BYTES + 1

    db = settings.storage.database
    row = wait_count(
        clickhouse,
        f"SELECT count() AS n, uniqExact(event_id) AS u FROM {db}.events FINAL",
        len(good) + len(known),
    )
    assert (row["n"], row["u"]) == (len(good) + len(known),) * 2
    rows = clickhouse.query(f"SELECT event_id, status, error_code FROM {db}.events FINAL")
    assert {r["event_id"] for r in rows if r["status"] == "ok"} == set(good)
    assert {r["event_id"]: r["error_code"] for r in rows if r["status"] != "ok"} == known
    assert private.worker.process.poll() is None, private.worker.tail()


def sample(account: str) -> Record:
    return {
        "sample_id": "s",
        "account_id": account,
        "event_id": None,
        "face_index": 0,
        "created_at": datetime.now(UTC),
        "image": b"x",
    }


@pytest.mark.slow
def test_a_killed_worker_restarted_in_its_slot_takes_its_partitions_back_at_once(
    private: Private, testdata_dir: Path
) -> None:
    photo = people(testdata_dir)["John_Simm"][2].read_bytes()
    send = [{"data": photo, "account_id": str(uuid.uuid4())}]
    asyncio.run(send_and_collect(private.settings, send))
    private.worker.process.kill()
    private.worker.process.wait()
    started = time.monotonic()
    private.worker = private.start()
    (event,) = asyncio.run(send_and_collect(private.settings, send, timeout=90))
    took = time.monotonic() - started
    print(f"restarted worker processed its first image {took:.1f} s after it was started")
    assert event["status"] == "ok"
    assert took < 15 < SESSION_TIMEOUT_S, private.worker.tail()
