"""Poison on every topic of a deployment, stage and followed alike: a null value under a key that
is not UTF-8, garbage, a truncated message, a valid message of another topic's schema and random
bytes just under the broker's limit. Each record the worker's consumer group reads ends as exactly
one dead letter naming it; the followers skip each record they read with one log line; a worker
and an API live on, the same processes, and good traffic afterwards is stored exactly once.

The topics come from `topics.ALL`: a topic added later without saying who reads it fails here."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastavro.utils import generate_one

import schemas
from sinks.clickhouse import DriverClient
from streams.control.launch import WORKER_READY, ApiProcess, WorkerProcess
from streams.kafka import topics
from streams.kafka.images import ENVELOPE_BYTES
from streams.settings import Settings
from streams.worker.deadletters import PAYLOAD_BOUND
from tests.integration.conftest import RELOAD, Deployment
from tests.integration.streaming import Counts, enroll_and_match, produce, send_all
from tests.integration.test_pipeline import people
from tests.integration.test_poison import letters_until

pytestmark = pytest.mark.integration

GROUP = "group"
# Who reads each topic. GROUP: the worker's consumer group (the stage agents of
# streams/worker/agents.py, the store agents of streams/worker/store.py), the one reader that
# dead-letters a record it cannot use. Every other topic says why no letter is due.
READERS: dict[str, str] = {
    "images": GROUP,  # detect
    "detections": GROUP,  # liveness
    "liveness": GROUP,  # extract
    "descriptors": GROUP,  # match
    "events": GROUP,  # store_events; the API's event feed follows it too
    "faces": GROUP,  # store_faces; the gallery (worker) and the directory (API) follow it too
    "reextractions": GROUP,  # store_reextractions
    "samples": GROUP,  # store_samples; a re-extraction task reads it under a group of its own
    "lists": "followed outside any group by the gallery and the directory: skipped, logged",
    "config": "followed by --config-reload and `config show`: a section refused, shown",
    "config_history": "read only by `facestream config history`",
    "dead_letters": "not consumed: the letters themselves (this test reads them)",
    "tasks": "followed outside any group by every API process's task board: skipped, logged",
}
# The followers of each topic, outside any group, in the worker and in the API
# (streams/reader.py TopicReader: one "skipped a record" line per record it cannot use).
FOLLOWED_BY_WORKER = ("faces", "lists")  # the gallery
FOLLOWED_BY_API = ("faces", "lists", "events", "tasks")  # directory, event feed, task board

NOT_UTF8 = b"\xffpoison"
KINDS = ("null", "garbage", "truncated", "wrong_schema", "oversized")
CODES = {
    "null": {"null_value"},
    "garbage": {"bad_wire_format"},
    "truncated": {"schema_mismatch"},
    "wrong_schema": {"schema_mismatch", "unknown_schema_version"},  # a version it lacks, or not
    "oversized": {"bad_wire_format"},
}
GOOD_IMAGES = 6

Poison = tuple[topics.TopicSpec, str, bytes | None, bytes | None]  # spec, kind, key, value


def valid_message(schema: str) -> bytes:
    """A valid message of `schema`, the same every run (fastavro draws it from `random`, whose
    state is given back)."""
    state = random.getstate()
    random.seed(schema)
    try:
        codec = schemas.codec(schema)
        return codec.encode(generate_one(codec.schema))
    finally:
        random.setstate(state)


def other_schema(spec: topics.TopicSpec) -> str:
    """The schema of the next topic in ALL that has another one."""
    i = topics.ALL.index(spec)
    return next(s.schema for s in topics.ALL[i + 1 :] + topics.ALL[:i] if s.schema != spec.schema)


def poison_of(spec: topics.TopicSpec, limit: int) -> list[Poison]:
    # A compacted topic takes no record without a key (the broker refuses it); a null value
    # there is a deletion, legitimate, so the null one's poison is its key, which names nothing.
    def key(kind: str) -> bytes | None:
        return f"poison-{kind}".encode() if spec.compacted else None

    whole = valid_message(spec.schema)
    values = {
        "garbage": b"\x00\x01 not a facestream message",
        "truncated": whole[: 2 + (len(whole) - 2) // 2],  # magic, version, half the body
        "wrong_schema": valid_message(other_schema(spec)),
        # Random bytes, leaving the broker room for the record's envelope; no magic byte.
        "oversized": b"\x00" + os.urandom(limit - ENVELOPE_BYTES - 1),
    }
    return [(spec, "null", NOT_UTF8, None)] + [
        (spec, kind, key(kind), values[kind]) for kind in KINDS[1:]
    ]


def expected_codes(spec: topics.TopicSpec, kind: str) -> set[str]:
    # The store stage reads a face's id from the key before its value (a null value deletes
    # the face): the key that is not UTF-8 is what it refuses.
    return {"bad_key"} if spec.compacted and kind == "null" else CODES[kind]


async def group_topics(settings: Settings, expected: set[str], timeout: float) -> set[str]:
    """The deployment's topics the worker's group committed offsets on (Faust's group is the
    topic prefix), once they are the expected ones or time is up."""
    prefix = f"{settings.kafka.topic_prefix}."
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap_servers(settings.kafka))
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            offsets: dict[TopicPartition, object] = await admin.list_consumer_group_offsets(
                settings.kafka.topic_prefix
            )
            found = {tp.topic.removeprefix(prefix) for tp in offsets if tp.topic.startswith(prefix)}
            if found == expected or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def skipped(process: WorkerProcess | ApiProcess, settings: Settings, suffix: str) -> int:
    marker = f"skipped a record of {settings.kafka.topic_prefix}.{suffix}["
    return process.log.read_text(errors="replace").count(marker)


def test_poison_on_every_topic_is_dead_lettered_or_skipped_and_nothing_stops(
    deployment: Deployment,
    processes: list[WorkerProcess],
    clickhouse: DriverClient,
    testdata_dir: Path,
) -> None:
    every = {spec.suffix for spec in topics.ALL}
    assert set(READERS) == every, f"say in READERS who reads {sorted(every ^ set(READERS))}"
    consumed = {suffix for suffix, reader in READERS.items() if reader == GROUP}
    settings = deployment.settings

    worker = WorkerProcess(deployment.env, deployment.folder / "worker.log", *RELOAD)
    processes.append(worker)
    api = ApiProcess(deployment.env, deployment.folder / "api.log", *RELOAD)
    try:
        worker.wait_ready()
        api.wait_ready()
        pids = (worker.process.pid, api.process.pid)

        poison = [
            p for spec in topics.ALL for p in poison_of(spec, settings.kafka.max_message_bytes)
        ]
        places = asyncio.run(
            produce(settings, [(spec, key, value) for spec, _, key, value in poison])
        )
        landed = dict(zip(places, poison, strict=True))

        matched = enroll_and_match(api, people(testdata_dir)["John_Salley"])["event_id"]
        photos = [p.read_bytes() for p in people(testdata_dir)["John_Simm"][:3]]
        good = asyncio.run(send_all(settings, photos, GOOD_IMAGES)) | {matched}

        due = {at: p for at, p in landed.items() if p[0].suffix in consumed}
        letters = asyncio.run(letters_until(settings, len(due), timeout=180))
        by_place = {(d["topic"], d["partition"], d["offset"]): d for d in letters}
        assert len(by_place) == len(letters), "two letters for one record"
        assert set(by_place) == set(due), sorted(
            (*at, d["error_code"]) for at, d in by_place.items()
        )
        for at, (spec, kind, key, value) in due.items():
            letter = by_place[at]
            assert letter["error_code"] in expected_codes(spec, kind), (spec.suffix, kind, letter)
            assert (letter["key"], letter["payload_size"]) == (key, value and len(value))
            assert len(letter["payload"] or b"") <= PAYLOAD_BOUND

        counts = Counts(clickhouse, settings.storage.database)
        assert counts.wait(len(good), timeout=120) == (len(good), len(good))
        rows = clickhouse.query(
            f"SELECT event_id FROM {settings.storage.database}.events FINAL WHERE status = 'ok'"
        )
        assert {r["event_id"] for r in rows} == good

        assert asyncio.run(group_topics(settings, consumed, timeout=30)) == consumed
        for suffix in FOLLOWED_BY_WORKER:
            assert skipped(worker, settings, suffix) == len(KINDS), suffix
        for suffix in FOLLOWED_BY_API:
            assert skipped(api, settings, suffix) == len(KINDS), suffix

        # The config topic's null value deletes a key that names nothing; the other four are
        # shown refused, and every section still shows.
        shown = deployment.config("show")
        assert "Traceback" not in shown.stderr, shown.stderr
        refused = sorted(
            line.split(",")[1].split(":")[0].strip()
            for line in shown.stdout.splitlines()
            if line.startswith("REFUSED")
        )
        assert refused == sorted(f"poison-{kind}" for kind in KINDS[1:]), shown.stdout
        assert shown.returncode == 1  # 1: something on the topic is refused
        assert "[kafka]  (defaults/file/environment)" in shown.stdout

        assert (worker.process.poll(), api.process.poll()) == (None, None)
        assert (worker.process.pid, api.process.pid) == pids
        # Started once: not restarted in place by a config follower, nor by an agent's exit.
        assert worker.log.read_text(errors="replace").count(WORKER_READY) == 1, worker.tail()
    finally:
        api.stop()
