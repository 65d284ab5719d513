"""Garbage on the topics every process follows (faces, lists, events, config): a worker and an
API still start, skip each bad record with one log line, and serve; a config message whose key
is not UTF-8 is shown refused and can be removed. A deployment of its own (real servers)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

import schemas
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import ApiProcess, WorkerProcess
from streams.kafka import topics
from streams.settings import Settings
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration
JPEG = {"content-type": "image/jpeg"}
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


async def publish(
    settings: Settings, spec: topics.TopicSpec, key: bytes | None, value: bytes | None
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers(settings.kafka), acks="all"
    )
    await producer.start()
    try:
        await producer.send_and_wait(topics.topic_name(settings.kafka, spec), value, key=key)
    finally:
        await producer.stop()


async def poison(settings: Settings) -> None:
    await topics.ensure_topics(settings.kafka)
    await publish(settings, topics.FACES, b"short-vector", bad_face("short-vector"))
    await publish(settings, topics.FACES, b"\xfe\xff", bad_face("f"))  # a key not UTF-8
    await publish(settings, topics.FACES, b"garbage", b"\x00\x01 not avro")
    with pytest.raises(KafkaError):  # the broker itself keeps keyless records off compacted topics
        await publish(settings, topics.FACES, None, bad_face("keyless"))
    await publish(settings, topics.LISTS, b"\xfe\xff", b"\x00garbage")
    await publish(settings, topics.CONFIG, BAD_KEY, b"\x00garbage")


def skipped_lines(log: Path, spec: topics.TopicSpec, settings: Settings) -> int:
    marker = f"skipped a record of {topics.topic_name(settings.kafka, spec)}["
    return log.read_text(errors="replace").count(marker)


async def garbage_events(settings: Settings) -> None:
    await publish(settings, topics.EVENTS, b"e1", None)
    await publish(settings, topics.EVENTS, b"\xfe\xff", b"\x00garbage")
    await publish(settings, topics.EVENTS, None, b"\x01\x02")


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
        headers = {"Luna-Account-Id": str(uuid.uuid4())}
        with httpx.Client(base_url=api.origin, timeout=90) as http:
            list_id = http.post("/v1/lists", headers=headers).json()["list_id"]
            created = http.post(
                "/v1/faces",
                headers=headers | JPEG,
                content=john[0].read_bytes(),
                params={"list_id": list_id},
            )
            assert created.status_code == 201, created.text
            (face,) = created.json()["faces"]
            asyncio.run(garbage_events(settings))
            answer = http.post(
                "/v1/images",
                headers=headers | JPEG,
                content=john[1].read_bytes(),
                params={"list_id": list_id, "wait": 1, "timeout": 60},
            )
            assert answer.status_code == 200, answer.text
            matches = answer.json()["faces"][0]["matches"]
            assert [m["face_id"] for m in matches] == [face["face_id"]]
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
