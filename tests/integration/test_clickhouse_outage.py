"""The store stage against the real ClickHouse: an outage mid-stream loses nothing and stores
nothing twice; a row ClickHouse refuses is dead-lettered and the rest is stored.

The outage strikes a private ClickHouse server (tests.integration.servers), never the shared one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

import schemas
from sinks.clickhouse import DriverClient
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import WorkerProcess
from streams.kafka import topics
from streams.kafka.reader import TopicReader
from streams.settings import Settings
from tests import sink_records
from tests.integration.conftest import Deployment, influx_query
from tests.integration.servers import PrivateServer
from tests.integration.streaming import Counts, send_all, start_worker, with_env

pytestmark = pytest.mark.integration

IMAGES = 300
OUTAGE_S = 30


def monitored(deployment: Deployment, field: str) -> float:
    """The sum of a store_events field over the deployment's monitoring points."""
    result = influx_query(
        deployment.env,
        f"SELECT sum({field}) FROM facestream_stage WHERE stage = 'store_events'",
        deployment.settings.influx_monitoring.database,
    )
    series = result["results"][0].get("series") or [{"values": [[0, 0]]}]
    return float(series[0]["values"][0][1] or 0)


@pytest.mark.slow
def test_clickhouse_stopped_mid_stream_loses_nothing_and_stores_nothing_twice(
    deployment: Deployment,
    private_server: Callable[[str], PrivateServer],
    processes: list[WorkerProcess],
    testdata_dir: Path,
) -> None:
    influx_db = f"{deployment.settings.kafka.topic_prefix}_monitoring"
    influx_query(deployment.env, f"CREATE DATABASE {influx_db}", database=None)
    private_clickhouse = private_server("clickhouse")
    url = f"clickhouse://127.0.0.1:{private_clickhouse.port}"
    settings = with_env(
        deployment,
        FACESTREAM_STORAGE__CLICKHOUSE_URL=url,
        FACESTREAM_STORAGE__RETRY_MAX_S="2",  # the backlog drains within 2 s of the return
        FACESTREAM_INFLUX_MONITORING__DATABASE=influx_db,
    )
    worker = start_worker(deployment, processes, "worker")
    client = DriverClient(url)
    counts = Counts(client, settings.storage.database)
    photos = [p.read_bytes() for p in read_folder(testdata_dir / "johns", IMAGE_EXTENSIONS)]
    try:
        sent = asyncio.run(send_all(settings, photos, count=IMAGES))
        assert len(sent) == IMAGES
        before = counts.wait(20, timeout=60)[1]
        assert 20 <= before < IMAGES, f"{before} events stored before the outage"
        private_clickhouse.stop()
        time.sleep(OUTAGE_S)
        private_clickhouse.start()
        rows, events = counts.wait(IMAGES, timeout=60)
        assert (rows, events) == (IMAGES, IMAGES), worker.tail()
        assert worker.process.poll() is None, worker.tail()
        deadline = time.monotonic() + 10
        while monitored(deployment, "flush_failures") == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        failures = monitored(deployment, "flush_failures")
        assert failures > 0
        assert monitored(deployment, "flush_retries") == failures
    finally:
        client.close()


def event_message(account: str, face_index: int = 0) -> tuple[str, bytes]:
    record = sink_records.event(account, faces=1)
    record["faces"][0]["geometry"]["index"] = face_index
    return record["context"]["event_id"], schemas.codec("Event").encode(record)


async def produce(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    """Raw Event messages straight onto the events topic, as a match stage would send them."""
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap_servers(settings.kafka))
    await producer.start()
    try:
        name = topics.topic_name(settings.kafka, topics.EVENTS)
        for key, value in messages:
            await producer.send(name, value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def dead_letters(settings: Settings, count: int, timeout: float) -> list[dict[str, Any]]:
    letters: list[dict[str, Any]] = []
    async with TopicReader(settings, topics.DEAD_LETTERS, from_beginning=True) as reader:
        deadline = time.monotonic() + timeout
        while len(letters) < count and time.monotonic() < deadline:
            letters += [letter for _, letter in await reader.read()]
        letters += [letter for _, letter in await reader.read(timeout=1)]  # no more than that
    return letters


def test_a_row_clickhouse_refuses_is_dead_lettered_and_the_rest_stored(
    deployment: Deployment, processes: list[WorkerProcess], clickhouse: DriverClient
) -> None:
    worker = WorkerProcess(
        deployment.env, deployment.folder / "store.log", "--stages", "store", ready="]: Ready"
    )
    processes.append(worker)
    worker.wait_ready()
    settings, account = deployment.settings, str(uuid.uuid4())
    counts = Counts(clickhouse, settings.storage.database)
    good = [event_message(account) for _ in range(50)]
    bad_id, bad = event_message(account, face_index=70000)
    asyncio.run(produce(settings, [*good[:25], (bad_id, bad), *good[25:]]))
    assert counts.wait(50, timeout=30) == (50, 50)
    (letter,) = asyncio.run(dead_letters(settings, 1, timeout=10))
    assert (letter["stage"], letter["error_code"], letter["event_id"]) == (
        "store_events",
        "storage_refused",
        bad_id,
    )
    assert "65535" in letter["error_message"], letter["error_message"]
    assert letter["payload"] == bad
    later = [event_message(account) for _ in range(5)]
    asyncio.run(produce(settings, later))
    assert counts.wait(55, timeout=30) == (55, 55)
    stored = clickhouse.query(
        f"SELECT event_id FROM {settings.storage.database}.events FINAL WHERE event_id = '{bad_id}'"
    )
    assert stored == []
