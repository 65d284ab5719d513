"""The fault suite: servers and workers fail in the middle of a stream, and every image still ends
as exactly one event row (counted from outside, in ClickHouse, under FINAL).

Each test streams its own images into a private deployment (topic prefix, database); the fault
hits a worker process of that deployment or a private copy of a server (tests.integration.
servers), never the servers the other tests share.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sinks.clickhouse import DriverClient
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import WorkerProcess
from tests.integration.conftest import Deployment, influx_query
from tests.integration.servers import PrivateServer
from tests.integration.streaming import Counts, send_all, start_worker, with_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGES = 200  # per test; the fault strikes once FAULT_AFTER events are stored
FAULT_AFTER = 40


@pytest.fixture(scope="module")
def photos(testdata_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in read_folder(testdata_dir / "johns", IMAGE_EXTENSIONS)]


@dataclass
class Stream:
    """What every test here streams through: its private deployment, the workers it starts
    there, the events stored there, and the photos."""

    deployment: Deployment
    processes: list[WorkerProcess]
    counts: Counts
    photos: list[bytes]

    def worker(self, name: str, *args: str) -> WorkerProcess:
        return start_worker(self.deployment, self.processes, name, *args)

    def with_fault(self, fault: Callable[[], None], timeout: float = 180) -> tuple[int, int]:
        """Sends IMAGES images, runs `fault` once FAULT_AFTER are stored, waits for all of them."""
        sent = asyncio.run(send_all(self.deployment.settings, self.photos, IMAGES))
        assert len(sent) == IMAGES
        stored_before = self.counts.wait(FAULT_AFTER, timeout=120)[1]
        assert stored_before >= FAULT_AFTER, f"only {stored_before} events stored before the fault"
        assert stored_before < IMAGES, "the stream ended before the fault struck: send more images"
        fault()
        return self.counts.wait(IMAGES, timeout)


@pytest.fixture
def stream(
    clickhouse: DriverClient,
    deployment: Deployment,
    processes: list[WorkerProcess],
    photos: list[bytes],
) -> Stream:
    counts = Counts(clickhouse, deployment.settings.storage.database)
    return Stream(deployment, processes, counts, photos)


def test_a_worker_killed_mid_stream_loses_nothing_and_stores_nothing_twice(stream: Stream) -> None:
    first = stream.worker("first")

    def kill_and_replace() -> None:
        first.process.kill()
        first.process.wait(10)
        stream.worker("second")

    rows, events = stream.with_fault(kill_and_replace)
    assert (rows, events) == (IMAGES, IMAGES)


def test_one_of_two_workers_killed_the_other_finishes_the_stream(stream: Stream) -> None:
    first = stream.worker("first")
    second = stream.worker("second")

    def kill_one() -> None:
        first.process.kill()

    rows, events = stream.with_fault(kill_one)
    assert (rows, events) == (IMAGES, IMAGES)
    assert second.process.poll() is None, second.tail()


def test_sigterm_mid_stream_stops_cleanly_and_the_next_worker_finishes(stream: Stream) -> None:
    first = stream.worker("first")
    exits: list[int] = []

    def terminate_and_replace() -> None:
        first.process.send_signal(signal.SIGTERM)
        exits.append(first.process.wait(30))  # never ignored, never hung
        stream.worker("second")

    rows, events = stream.with_fault(terminate_and_replace)
    assert exits == [0], first.tail()
    assert (rows, events) == (IMAGES, IMAGES)


def test_the_broker_killed_and_restarted_mid_stream_loses_nothing(
    stream: Stream, private_server: Callable[[str], PrivateServer]
) -> None:
    broker = private_server("kafka")
    with_env(stream.deployment, FACESTREAM_KAFKA__BROKER=f"kafka://127.0.0.1:{broker.port}")
    # Under the supervisor, as deployed: a worker that can no longer work exits and comes back.
    worker = stream.worker("worker", "--workers", "1")

    def kill_and_restart() -> None:
        broker.kill()
        time.sleep(5)
        broker.start()

    rows, events = stream.with_fault(kill_and_restart)
    assert (rows, events) == (IMAGES, IMAGES), worker.tail()
    assert worker.process.poll() is None, worker.tail()


def test_influxdb_hung_then_stopped_never_blocks_the_stream(
    stream: Stream, private_server: Callable[[str], PrivateServer]
) -> None:
    influx = private_server("influxdb")
    with_env(
        stream.deployment,
        FACESTREAM_INFLUX_MONITORING__PORT=str(influx.port),
        FACESTREAM_INFLUX_MONITORING__DATABASE="facestream",
    )
    worker = stream.worker("worker")

    def hang() -> None:
        influx.freeze()  # connections open, no answer: the writer must time out, not wait

    rows, events = stream.with_fault(hang)
    assert (rows, events) == (IMAGES, IMAGES), worker.tail()
    influx.thaw()
    influx.stop()
    # And with InfluxDB gone altogether, more images still flow.
    more = asyncio.run(send_all(stream.deployment.settings, stream.photos, count=20))
    rows, events = stream.counts.wait(IMAGES + len(more), timeout=120)
    assert (rows, events) == (IMAGES + 20, IMAGES + 20)
    assert worker.process.poll() is None, worker.tail()
    influx.start()
    env = {
        "FACESTREAM_INFLUX_MONITORING__HOST": "127.0.0.1",
        "FACESTREAM_INFLUX_MONITORING__PORT": str(influx.port),
    }
    deadline = time.monotonic() + 30
    while True:  # the points written before the hang are there; monitoring resumes
        result = influx_query(
            env,
            "SELECT sum(processed) FROM facestream_stage WHERE stage = 'store_events'",
            "facestream",
        )
        series = result["results"][0].get("series")
        if series or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert series, result
