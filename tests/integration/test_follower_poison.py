"""Garbage on the topics every process follows (faces, lists, events, config): a worker and an
API still start, skip each bad record with one log line, and serve; a config message whose key
is not UTF-8 is shown refused and can be removed. A deployment of its own (real servers)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

import schemas
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import ApiProcess, WorkerProcess
from streams.kafka import topics
from streams.settings import Settings
from tests.integration.conftest import Deployment
from tests.integration.streaming import Message, enroll_and_match, produce

pytestmark = pytest.mark.integration
BAD_KEY = b"\xffmatch"


def bad_face(face_id: str) -> bytes:
    """A Face that decodes but holds a 5-byte descriptor."""
    return schemas.codec("Face").encode(
        {
            "face_id": face_id,
            "account_id": str(uuid.uuid4()),
            "list_ids": ["l"],
            "user_data": None,
            "event_id": None,
            "sample_id": None,
            "created_at": datetime.now(UTC),
            "descriptors": [{"version": 1, "vector": b"12345"}],
        }
    )


async def poison(settings: Settings) -> None:
    await topics.ensure_topics(settings.kafka)
    faces: list[Message] = [
        (topics.FACES, b"short-vector", bad_face("short-vector")),
        (topics.FACES, b"\xfe\xff", bad_face("f")),  # a key not UTF-8
        (topics.FACES, b"garbage", b"\x00\x01 not avro"),
    ]
    await produce(settings, faces)
    with pytest.raises(KafkaError):  # the broker itself keeps keyless records off compacted topics
        await produce(settings, [(topics.FACES, None, bad_face("keyless"))])
    await produce(
        settings,
        [(topics.LISTS, b"\xfe\xff", b"\x00garbage"), (topics.CONFIG, BAD_KEY, b"\x00garbage")],
    )


def skipped_lines(log: Path, spec: topics.TopicSpec, settings: Settings) -> int:
    marker = f"skipped a record of {topics.topic_name(settings.kafka, spec)}["
    return log.read_text(errors="replace").count(marker)


async def garbage_events(settings: Settings) -> None:
    events: list[Message] = [
        (topics.EVENTS, b"e1", None),
        (topics.EVENTS, b"\xfe\xff", b"\x00garbage"),
        (topics.EVENTS, None, b"\x01\x02"),
    ]
    await produce(settings, events)


def test_worker_and_api_start_and_serve_over_garbage_on_the_followed_topics(
    stack_env: dict[str, str], tmp_path: Path, testdata_dir: Path
) -> None:
    deployment = Deployment(stack_env, tmp_path)
    settings = deployment.settings
    asyncio.run(poison(settings))

    shown = deployment.config("show")
    assert shown.returncode == 1, shown.stderr
    refused = [line for line in shown.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 1 and "not UTF-8" in refused[0] and "--bad-keys" in refused[0]

    # Every stage: the followers skip what the store stage, the faces topic's group consumer,
    # dead-letters.
    worker = WorkerProcess(deployment.env, tmp_path / "worker.log")
    worker.wait_ready()
    api = ApiProcess(deployment.env, tmp_path / "api.log")
    try:
        api.wait_ready()
        for process in (worker, api):
            assert skipped_lines(process.log, topics.FACES, settings) == 3
            assert skipped_lines(process.log, topics.LISTS, settings) == 1
        john = read_folder(testdata_dir / "johns/John_Salley", IMAGE_EXTENSIONS)
        # Garbage on the events topic, which the API follows to answer the match's wait=1.
        enroll_and_match(api, john, between=lambda: asyncio.run(garbage_events(settings)))
        assert skipped_lines(api.log, topics.EVENTS, settings) == 3
        assert (worker.process.poll(), api.process.poll()) == (None, None)
    finally:
        api.stop()
        worker.stop()

    reset = deployment.config("reset", "--bad-keys")
    assert reset.returncode == 0, reset.stderr
    assert "bad keys removed: 1" in reset.stdout
    shown = deployment.config("show")
    assert shown.returncode == 0, shown.stdout
    assert "REFUSED" not in shown.stdout
