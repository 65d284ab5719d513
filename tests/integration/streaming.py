"""What the fault tests share: a private deployment's settings, its workers, images streamed into
it, raw records produced to its topics, a person enrolled and matched through its API, and the
events it stored, counted from outside in ClickHouse."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from aiokafka import AIOKafkaProducer

from sinks.clickhouse import DriverClient
from streams.control.launch import ApiProcess, WorkerProcess
from streams.kafka import topics
from streams.kafka.images import ImageProducer
from streams.settings import Settings
from tests.integration.conftest import Deployment

ACCOUNTS = [str(uuid.uuid4()) for _ in range(3)]
JPEG = {"content-type": "image/jpeg"}

Message = tuple[topics.TopicSpec, bytes | None, bytes | None]  # topic, key, value


def with_env(deployment: Deployment, **env: str) -> Settings:
    """Points the deployment at other servers (a private copy) before its workers start."""
    deployment.env |= env
    with mock.patch.dict(os.environ, deployment.env):
        deployment.settings = Settings()
    return deployment.settings


class Counts:
    def __init__(self, clickhouse: DriverClient, database: str) -> None:
        self.clickhouse, self.database = clickhouse, database

    def events(self) -> tuple[int, int]:
        """(rows under FINAL, distinct event ids): equal when nothing is stored twice."""
        try:
            (row,) = self.clickhouse.query(
                f"SELECT count() AS rows, uniqExact(event_id) AS events "
                f"FROM {self.database}.events FINAL"
            )
        except Exception:  # the worker has not created the tables yet
            return 0, 0
        return int(row["rows"]), int(row["events"])

    def wait(self, at_least: int, timeout: float) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        while (counts := self.events())[1] < at_least and time.monotonic() < deadline:
            time.sleep(0.25)
        return counts


async def send_all(settings: Settings, photos: list[bytes], count: int) -> set[str]:
    """`count` images (the photos over and over), acknowledged by the broker before returning."""
    async with ImageProducer(settings) as producer:
        ids = {
            await producer.send(photos[i % len(photos)], account_id=ACCOUNTS[i % len(ACCOUNTS)])
            for i in range(count)
        }
        await producer.flush()
    return ids


def start_worker(
    deployment: Deployment, processes: list[WorkerProcess], name: str, *args: str
) -> WorkerProcess:
    process = WorkerProcess(deployment.env, deployment.folder / f"{name}.log", *args)
    processes.append(process)
    process.wait_ready()
    return process


async def produce(settings: Settings, messages: list[Message]) -> list[tuple[str, int, int]]:
    """Each message as it is (poison too), in order, acknowledged by every replica: where each
    landed (topic, partition, offset). A message the broker refuses raises."""
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers(settings.kafka),
        max_request_size=settings.kafka.max_message_bytes,
        acks="all",
    )
    await producer.start()
    try:
        landed = []
        for spec, key, value in messages:
            name = topics.topic_name(settings.kafka, spec)
            at = await producer.send_and_wait(name, value=value, key=key)
            landed.append((name, at.partition, at.offset))
        return landed
    finally:
        await producer.stop()


def enroll_and_match(
    api: ApiProcess, photos: list[Path], between: Callable[[], object] = lambda: None
) -> dict[str, Any]:
    """photos[0] enrolled through the API into a new list of a new account; `between` run; then
    photos[1] matched against the list with wait=1, its one match the enrolled face: the event."""
    headers = {"Luna-Account-Id": str(uuid.uuid4())}
    with httpx.Client(base_url=api.origin, timeout=90) as http:
        list_id = http.post("/v1/lists", headers=headers).json()["list_id"]
        created = http.post(
            "/v1/faces",
            headers=headers | JPEG,
            content=photos[0].read_bytes(),
            params={"list_id": list_id},
        )
        assert created.status_code == 201, created.text
        (face,) = created.json()["faces"]
        between()
        answer = http.post(
            "/v1/images",
            headers=headers | JPEG,
            content=photos[1].read_bytes(),
            params={"list_id": list_id, "wait": 1, "timeout": 60},
        )
    assert answer.status_code == 200, answer.text
    event: dict[str, Any] = answer.json()
    assert event["status"] == "ok", event
    assert [m["face_id"] for m in event["faces"][0]["matches"]] == [face["face_id"]]
    return event
