"""The API survives what a worker survives: a restart-class settings change (it starts again in
place) and, with --workers, the kill -9 of one of its processes (the supervisor starts another
while the rest keep answering on the shared port)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from streams.control.launch import ApiProcess
from tests.integration.conftest import RELOAD, Deployment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACK_WITHIN_S = 90  # a fresh API process loads the models and reads the faces and lists
STARTED = re.compile(r"worker (\d+) started, pid (\d+)")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def answers(api: ApiProcess) -> bool:
    try:
        return httpx.get(f"{api.origin}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def count(api: ApiProcess, text: str) -> int:
    return api.log.read_text(errors="replace").count(text)


def test_a_restart_class_change_restarts_the_api_in_place(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    deployment = Deployment(stack_env, tmp_path)
    api = ApiProcess(deployment.env, tmp_path / "api.log", *RELOAD)
    try:
        api.wait_ready()
        assert deployment.config("set", "worker", "batch_size=8").returncode == 0
        wait_until(
            lambda: count(api, "Application startup complete") == 2,
            BACK_WITHIN_S,
            f"the API did not start again:\n{api.tail()}",
        )
        wait_until(lambda: answers(api), BACK_WITHIN_S, f"no answer after:\n{api.tail()}")
        assert "restarting to apply worker" in api.log.read_text()
        assert api.process.poll() is None  # the same process, started again in place
    finally:
        api.stop()


def test_an_api_process_killed_is_restarted_while_the_others_answer(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    deployment = Deployment(stack_env, tmp_path)
    api = ApiProcess(deployment.env, tmp_path / "api.log", "--workers", "2", *RELOAD)
    try:
        api.wait_ready()
        wait_until(lambda: count(api, "Application startup complete") == 2, 60, "both processes up")
        started = dict(STARTED.findall(api.log.read_text()))
        assert len(started) == 2, api.tail()
        os.kill(int(started["0"]), signal.SIGKILL)
        # The survivor answers at once and throughout, on the port the supervisor holds.
        refused = sum(not answers(api) for _ in range(20))
        assert refused == 0
        wait_until(
            lambda: count(api, "Application startup complete") == 3,
            BACK_WITHIN_S,
            f"no new process:\n{api.tail()}",
        )
        pids = [pid for slot, pid in STARTED.findall(api.log.read_text()) if slot == "0"]
        assert len(pids) == 2 and pids[0] != pids[1]
        os.kill(int(pids[1]), 0)  # alive
        # A restart-class change: each process exits 75 and is started again.
        assert deployment.config("set", "worker", "batch_size=8").returncode == 0
        wait_until(
            lambda: count(api, "Application startup complete") == 5,
            BACK_WITHIN_S,
            f"the processes did not start again:\n{api.tail()}",
        )
        wait_until(lambda: answers(api), BACK_WITHIN_S, "no answer after the restart")
        assert count(api, "exited 75: starting it again") == 2
        assert api.process.poll() is None
    finally:
        api.stop()
    assert api.process.returncode == 0, api.tail()
