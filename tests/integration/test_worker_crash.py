"""A real worker process (its own deployment) whose Faust machinery fails: it exits 70 at once,
and a stop signal ends it within its deadline even when the graceful stop hangs.

Deleting the topics a worker consumes or follows crashes nothing in Faust (it rebalances, logs
and waits: measured), so the failure is made inside the process: the monitoring timer, once the
test creates the trigger file, raises or ignores its cancellation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.control.launch import REPO, WorkerProcess, upgrade_schema
from streams.worker.crash import STOP_TIMEOUT_S
from streams.worker.deadletters import CRASH_EXIT_CODE
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration

READY = "Worker ready"  # Faust's line once its partitions are assigned

# `facestream worker` with the timer of the monitor failing the way FAILURE says once TRIGGER
# exists: "raise" raises, "hang" swallows the cancellation of the worker's stop.
WORKER = """
import asyncio, os, sys
from pathlib import Path
from streams import cli
from streams.control.monitoring import Monitor

trigger, failure, tick = Path(os.environ["TRIGGER"]), os.environ["FAILURE"], Monitor.tick

async def failing_tick(self):
    if not trigger.exists():
        return await tick(self)
    if failure == "raise":
        raise RuntimeError("the timer failed")
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

Monitor.tick = failing_tick
sys.exit(cli.main(sys.argv[1:]))
"""


class FailingWorker:
    def __init__(self, deployment: Deployment, failure: str) -> None:
        self.trigger = deployment.folder / "trigger"
        self.log = deployment.folder / f"{failure}.log"
        env = {**os.environ, **deployment.env, "TRIGGER": str(self.trigger), "FAILURE": failure}
        upgrade_schema(deployment.env)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER, "worker", "--stages", "detect"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 180
        while READY not in self.text():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.3)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def fail(self) -> float:
        self.trigger.touch()
        return time.monotonic()


@pytest.fixture
def failing(deployment: Deployment) -> Iterator[list[FailingWorker]]:
    started: list[FailingWorker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def test_a_crash_in_fausts_machinery_exits_70_at_once(
    deployment: Deployment, failing: list[FailingWorker]
) -> None:
    worker = FailingWorker(deployment, "raise")
    failing.append(worker)
    failed_at = worker.fail()
    assert worker.process.wait(10) == CRASH_EXIT_CODE, worker.text()
    assert time.monotonic() - failed_at < 5
    assert "the worker crashed in failing_tick" in worker.text()


@pytest.mark.slow
def test_sigterm_ends_a_worker_whose_stop_hangs_within_the_deadline(
    deployment: Deployment, failing: list[FailingWorker]
) -> None:
    worker = FailingWorker(deployment, "hang")
    failing.append(worker)
    worker.fail()
    time.sleep(1)  # the timer is in its endless sleep
    worker.process.send_signal(signal.SIGTERM)
    sent_at = time.monotonic()
    assert worker.process.wait(STOP_TIMEOUT_S + 15) == 0, worker.text()
    assert STOP_TIMEOUT_S - 1 < time.monotonic() - sent_at < STOP_TIMEOUT_S + 10
    assert f"did not stop within {STOP_TIMEOUT_S:.0f} s" in worker.text()


def test_a_worker_on_embedded_chdb_stops_cleanly(deployment: Deployment, tmp_path: Path) -> None:
    """chDB left open crashed the interpreter's teardown (SIGSEGV, exit 139) after a clean stop."""
    env = {k: v for k, v in deployment.env.items() if k != "FACESTREAM_STORAGE__CLICKHOUSE_URL"}
    worker = WorkerProcess(env | {"FACESTREAM_STATE": str(tmp_path / "state")}, tmp_path / "w.log")
    try:
        worker.wait_ready()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(40) == 0, worker.tail()
    finally:
        worker.stop()
