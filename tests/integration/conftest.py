"""The real servers (started by infra/stack.sh) and one real worker process for the session.

Each session uses its own topic prefix, ClickHouse database and InfluxDB database, so runs
never see each other's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from sinks.clickhouse import DriverClient
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
WORKER_READY = "gallery loaded"


def _stack_env() -> dict[str, str]:
    """Starts the stack if needed (idempotent) and returns the client variables it prints."""
    subprocess.run(
        ["bash", str(REPO / "infra/stack.sh"), "start"], check=True, stdout=subprocess.DEVNULL
    )
    printed = subprocess.run(
        ["bash", str(REPO / "infra/stack.sh"), "env"], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    env = {}
    for line in printed.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="session")
def stack_env(models_dir: Path) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    env = _stack_env()
    env |= {
        "FACESTREAM_KAFKA__TOPIC_PREFIX": f"it{run}",
        "FACESTREAM_KAFKA__SESSION_TIMEOUT_S": "6",
        "FACESTREAM_STORAGE__DATABASE": f"it{run}",
        "FACESTREAM_STORAGE__FLUSH_INTERVAL_S": "0.2",
        "FACESTREAM_INFLUX_MONITORING__SEND_DATA_FOR_MONITORING": "true",
        "FACESTREAM_INFLUX_MONITORING__DATABASE": f"it{run}",
        "FACESTREAM_INFLUX_MONITORING__FLUSHING_PERIOD": "0.5",
        "FACESTREAM_MODELS_DIR": str(models_dir),
        "FACESTREAM_WORKER__WEB_PORT": str(20000 + int(run[:4], 16) % 20000),
    }
    influx_query(env, f"CREATE DATABASE it{run}", database=None)
    return env


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    with mock.patch.dict(os.environ, stack_env):
        return Settings()


@pytest.fixture(scope="session")
def clickhouse(settings: Settings) -> Iterator[DriverClient]:
    assert settings.storage.clickhouse_url
    client = DriverClient(settings.storage.clickhouse_url)
    yield client
    client.close()


def influx_query(env: dict[str, str], query: str, database: str | None) -> Any:
    import json

    params = {"q": query} | ({"db": database} if database else {})
    url = (
        f"http://{env['FACESTREAM_INFLUX_MONITORING__HOST']}:"
        f"{env['FACESTREAM_INFLUX_MONITORING__PORT']}/query?{urllib.parse.urlencode(params)}"
    )
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", *args],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180.0, ready: str = WORKER_READY) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited {self.process.returncode}:\n{self.tail()}")
            if ready in self.log.read_text(errors="replace"):
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready in {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._file.close()


@pytest.fixture(scope="session")
def worker(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(stack_env, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        process.wait_ready()
        yield process
        assert process.process.poll() is None, f"the worker died:\n{process.tail()}"
    finally:
        process.stop()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ApiProcess(WorkerProcess):
    """`facestream api` on a free port, with the same settings as the worker."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "api", "--port", str(self.port), *args],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180.0, ready: str = "") -> None:
        """Ready when /v1/health answers (after the directory of faces and lists is loaded)."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"API exited {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.origin}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"API not ready in {timeout}s:\n{self.tail()}")


@pytest.fixture(scope="session")
def api(
    stack_env: dict[str, str], worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    process = ApiProcess(stack_env, tmp_path_factory.mktemp("api") / "api.log")
    try:
        process.wait_ready()
        yield process
        assert process.process.poll() is None, f"the API died:\n{process.tail()}"
    finally:
        process.stop()


RELOAD = ("--config-reload", "--pulling-time", "0.5")


class Deployment:
    def __init__(self, stack_env: dict[str, str], folder: Path) -> None:
        run = uuid.uuid4().hex[:8]
        self.env = stack_env | {
            "FACESTREAM_KAFKA__TOPIC_PREFIX": f"cfg{run}",
            "FACESTREAM_STORAGE__DATABASE": f"cfg{run}",
            "FACESTREAM_WORKER__WEB_PORT": str(free_port()),
        }
        with mock.patch.dict(os.environ, self.env):
            self.settings = Settings()
        self.folder = folder

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def config(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli("config", *args)

    def worker(self, name: str = "worker") -> WorkerProcess:
        process = WorkerProcess(self.env, self.folder / f"{name}.log", *RELOAD)
        process.wait_ready()
        return process
