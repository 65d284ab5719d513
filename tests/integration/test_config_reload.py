"""Settings changed on the config topic while images stream: applied live or by a graceful
restart, refused when wrong, with no image lost. Each test has its own deployment (topic
prefix, database) so its changes touch nobody else."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from sinks.clickhouse import DriverClient
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import ApiProcess, CommandProcess, WorkerProcess, free_port
from streams.control.reload import SHUTDOWN_EXIT_CODE
from streams.kafka import topics
from streams.kafka.images import ImageProducer
from streams.kafka.reader import TopicReader
from streams.settings import Settings
from tests.integration.conftest import ADMIN_TOKEN, RELOAD, Deployment

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(stack_env: dict[str, str], tmp_path: Path) -> Deployment:
    return Deployment(stack_env, tmp_path)


@pytest.fixture
def running(deployment: Deployment) -> Iterator[WorkerProcess]:
    worker = deployment.worker()
    yield worker
    worker.stop()


def images(testdata_dir: Path) -> list[bytes]:
    return [
        f.read_bytes()
        for p in sorted((testdata_dir / "johns").iterdir())
        for f in read_folder(p, IMAGE_EXTENSIONS)
    ]


async def stream(
    settings: Settings, data: list[bytes], change: Any, after: int, timeout: float = 180
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Sends the images one by one, calling `change()` after `after` of them; returns the ids
    in order and every event that came out."""
    async with TopicReader(settings, topics.EVENTS) as events, ImageProducer(settings) as producer:
        ids = []
        for i, image in enumerate(data):
            if i == after:
                await asyncio.to_thread(change)
            ids.append(await producer.send(image, account_id=str(uuid.uuid4())))
            await producer.flush()
            await asyncio.sleep(0.1)
        found = await events.collect(set(ids), timeout)
    return ids, found


def log_has(process: CommandProcess, text: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.log.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


async def test_a_threshold_change_applies_to_later_images_and_loses_none(
    deployment: Deployment, running: WorkerProcess, testdata_dir: Path
) -> None:
    def tighten() -> None:
        assert deployment.config("set", "detection", "min_face_size=400").returncode == 0
        assert log_has(running, "settings changed: detection")

    ids, found = await stream(deployment.settings, images(testdata_dir)[:16], tighten, after=8)
    assert set(found) == set(ids)  # none lost
    codes = [found[i]["error_code"] for i in ids]
    assert codes[:8] == [None] * 8
    assert codes[-4:] == ["face_too_small"] * 4  # applied live: no restart happened
    assert "restarting" not in running.log.read_text()


async def test_garbage_on_the_config_topic_is_refused_visibly_and_nothing_stops(
    deployment: Deployment, running: WorkerProcess, testdata_dir: Path
) -> None:
    settings = deployment.settings
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap_servers(settings.kafka))
    await producer.start()
    name = topics.topic_name(settings.kafka, topics.CONFIG)
    await producer.send_and_wait(name, b"\x00 not a config change", key=b"match")
    await producer.send_and_wait(name, b"{}", key=b"detection")
    await producer.stop()
    assert log_has(running, "config section 'match' refused")
    shown = deployment.config("show")
    assert shown.returncode == 1
    assert "REFUSED on the config topic, match" in shown.stdout
    assert "REFUSED on the config topic, detection" in shown.stdout
    refused = deployment.config("set", "match", "limit=abc")
    assert refused.returncode == 2 and "limit" in refused.stderr
    ids, found = await stream(settings, images(testdata_dir)[:3], lambda: None, after=99)
    assert all(found[i]["status"] == "ok" for i in ids)
    assert running.process.poll() is None


async def test_a_restart_class_change_while_streaming_ends_every_image_exactly_once(
    deployment: Deployment, running: WorkerProcess, testdata_dir: Path, clickhouse: DriverClient
) -> None:
    def switch() -> None:
        result = deployment.config("set", "descriptor", "default_face_descriptor_version=2")
        assert result.returncode == 0, result.stderr

    data = images(testdata_dir)[:20]
    ids, found = await stream(deployment.settings, data, switch, after=6, timeout=240)
    assert set(found) == set(ids)
    assert log_has(running, "restarting to apply descriptor")
    assert found[ids[0]]["descriptor_version"] == 1
    assert found[ids[-1]]["descriptor_version"] == 2
    database = deployment.settings.storage.database
    quoted = ", ".join(f"'{i}'" for i in ids)
    deadline = time.monotonic() + 60
    while True:
        rows = clickhouse.query(
            f"SELECT event_id, count() AS n FROM {database}.events FINAL "
            f"WHERE event_id IN ({quoted}) GROUP BY event_id"
        )
        if len(rows) == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(r["event_id"] for r in rows) == sorted(ids)
    assert all(r["n"] == 1 for r in rows)
    assert running.process.poll() is None  # the same process, started again in place


def test_the_logging_level_changes_in_every_process_without_a_restart(
    deployment: Deployment, running: WorkerProcess
) -> None:
    api = ApiProcess(deployment.env, deployment.folder / "api.log", *RELOAD)
    try:
        api.wait_ready()
        assert deployment.config("set", "logging", "level=DEBUG").returncode == 0
        for process in (running, api):
            assert log_has(process, "logging level is now DEBUG"), process.tail()
            assert "restarting" not in process.log.read_text()
        import httpx

        shown = httpx.get(
            f"{api.origin}/v1/settings", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ).json()
        assert shown["logging"]["level"] == "DEBUG"
        assert shown["storage"]["clickhouse_url"] == "***"
    finally:
        api.stop()


def test_an_unreachable_new_clickhouse_is_retried_then_the_worker_shuts_down(
    deployment: Deployment, running: WorkerProcess
) -> None:
    closed = f"clickhouse://127.0.0.1:{free_port()}"
    assert deployment.config("set", "storage", f"clickhouse_url={closed}").returncode == 0
    assert log_has(running, "attempt 1 of 5")
    assert running.process.poll() is None  # the old settings still run meanwhile
    assert running.process.wait(60) == SHUTDOWN_EXIT_CODE
    text = running.log.read_text()
    assert "attempt 5 of 5" in text and "shutting down" in text


async def test_monitoring_to_a_dead_influxdb_never_stops_the_pipeline(
    stack_env: dict[str, str], tmp_path: Path, testdata_dir: Path
) -> None:
    deployment = Deployment(
        stack_env
        | {
            "FACESTREAM_INFLUX_MONITORING__PORT": str(free_port()),
            "FACESTREAM_INFLUX_MONITORING__VERSION": "1",
        },
        tmp_path,
    )
    worker = deployment.worker()
    try:
        ids, found = await stream(deployment.settings, images(testdata_dir)[:6], lambda: None, 99)
        assert all(found[i]["status"] == "ok" for i in ids)
        assert log_has(worker, "InfluxDB write failed")
        assert "points dropped" in worker.log.read_text()
        assert worker.process.poll() is None
    finally:
        worker.stop()
