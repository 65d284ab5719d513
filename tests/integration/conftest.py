"""The real servers (started by infra/stack.sh) and one real worker process for the session.

Each session uses its own topic prefix, ClickHouse database and InfluxDB database, so runs
never see each other's data; they are dropped when the session ends, with those of the tests'
own deployments (a developer's broker otherwise piles up thousands of partitions, and its every
start recovers them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest

from sinks.clickhouse import DriverClient
from streams.control import launch
from streams.control.launch import REPO, ApiProcess, CommandProcess, WorkerProcess, free_port
from streams.kafka import topics
from streams.settings import Settings
from tests.integration.servers import PrivateServer

ADMIN_TOKEN = "integration-admin-token"  # the API processes' api.admin_token
Process = TypeVar("Process", bound=CommandProcess)


MADE: list[Settings] = []  # the settings of every run of the session: what to drop at its end


def made(env: dict[str, str]) -> Settings:
    """The settings of a run with its own topic prefix and database, dropped after the session."""
    with mock.patch.dict(os.environ, env):
        settings = Settings()
    MADE.append(settings)
    return settings


def drop_made() -> None:
    """Deletes every run's topics and ClickHouse database. Best effort: what is left costs disk,
    never a test."""
    for settings in MADE:
        try:
            asyncio.run(topics.delete_deployment_topics(settings.kafka))
            assert settings.storage.clickhouse_url
            client = DriverClient(settings.storage.clickhouse_url)
            try:
                client.execute(f"DROP DATABASE IF EXISTS {settings.storage.database}")
            finally:
                client.close()
        except Exception as error:
            print(f"could not drop run {settings.kafka.topic_prefix}: {error!r}", file=sys.stderr)


@pytest.fixture(scope="session")
def stack_env(models_dir: Path) -> Iterator[dict[str, str]]:
    run = uuid.uuid4().hex[:8]
    env = launch.stack_env(start=True)
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
        "FACESTREAM_API__ADMIN_TOKEN": ADMIN_TOKEN,
    }
    influx_query(env, f"CREATE DATABASE it{run}", database=None)
    made(env)
    yield env
    drop_made()
    with contextlib.suppress(OSError):
        influx_query(env, f"DROP DATABASE it{run}", database=None)


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


def serving(process: Process) -> Iterator[Process]:
    """A session fixture's body: `process` once ready, stopped after the session, which fails
    if it died meanwhile."""
    try:
        process.wait_ready()
        yield process
        assert process.process.poll() is None, f"the {process.what} died:\n{process.tail()}"
    finally:
        process.stop()


@pytest.fixture(scope="session")
def worker(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    yield from serving(WorkerProcess(stack_env, tmp_path_factory.mktemp("worker") / "worker.log"))


@pytest.fixture(scope="session")
def api(
    stack_env: dict[str, str], worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    yield from serving(ApiProcess(stack_env, tmp_path_factory.mktemp("api") / "api.log"))


RELOAD = ("--config-reload", "--pulling-time", "0.5")


class Deployment:
    def __init__(self, stack_env: dict[str, str], folder: Path) -> None:
        run = uuid.uuid4().hex[:8]
        self.env = stack_env | {
            "FACESTREAM_KAFKA__TOPIC_PREFIX": f"cfg{run}",
            "FACESTREAM_STORAGE__DATABASE": f"cfg{run}",
            "FACESTREAM_WORKER__WEB_PORT": str(free_port()),
        }
        self.settings = made(self.env)
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


@pytest.fixture
def deployment(stack_env: dict[str, str], tmp_path: Path) -> Deployment:
    """A deployment of the test's own: topic prefix, database, web port."""
    return Deployment(stack_env, tmp_path)


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts; those still running are stopped after it."""
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.stop()


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Callable[[str], PrivateServer]]:
    """Starts a private copy of a server (kafka, clickhouse, influxdb) for a test to break;
    every copy is stopped after it (thawed first, should the test have frozen it)."""
    started: list[PrivateServer] = []

    def start(name: str) -> PrivateServer:
        server = PrivateServer(name, tmp_path / f"{name}-state")
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        with contextlib.suppress(OSError, ValueError):
            server.thaw()
        server.stop()
