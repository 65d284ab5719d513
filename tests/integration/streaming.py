"""What the fault tests share: a private deployment's settings, its workers, images streamed into
it, and the events it stored, counted from outside in ClickHouse."""

from __future__ import annotations

import os
import time
import uuid
from unittest import mock

from sinks.clickhouse import DriverClient
from streams.control.launch import WorkerProcess
from streams.kafka.images import ImageProducer
from streams.settings import Settings
from tests.integration.conftest import Deployment

ACCOUNTS = [str(uuid.uuid4()) for _ in range(3)]


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
