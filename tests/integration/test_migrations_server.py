"""Schema migrations on the real ClickHouse server (Debian's 18.16), each check in a private
database; a worker on an older schema refuses to start."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sinks import migrate
from sinks.clickhouse import DriverClient
from sinks.types import ClickHouseClient
from streams.control.launch import WorkerProcess
from tests import migration_checks
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration


@pytest.fixture
def database(clickhouse: DriverClient) -> Iterator[str]:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    yield name
    clickhouse.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.parametrize("check", migration_checks.CHECKS)
def test_migrations(
    clickhouse: DriverClient, database: str, check: Callable[[ClickHouseClient, str], None]
) -> None:
    check(clickhouse, database)


def test_a_log_from_before_downgrades_is_read_and_extended(
    clickhouse: DriverClient, database: str
) -> None:
    """A deployment migrated by the previous release: its log has no `applied` or `seq`."""
    clickhouse.execute(f"CREATE DATABASE {database}")
    clickhouse.execute(
        f"CREATE TABLE {database}.schema_migrations (version UInt32, name String, "
        "applied_at DateTime('UTC')) ENGINE = MergeTree ORDER BY version"
    )
    first = migrate.available()[0]
    for statement in first.up:
        migrate.run(clickhouse, database, statement)
    row = {"version": 1, "name": "initial", "applied_at": datetime.now(UTC)}
    clickhouse.insert(f"{database}.schema_migrations", [row])
    assert migrate.status(clickhouse, database).current == 1
    assert migration_checks.versions(migrate.upgrade(clickhouse, database)) == [2, 3, 4]
    assert migration_checks.versions(migrate.downgrade(clickhouse, database, to=0)) == [4, 3, 2, 1]
    assert migrate.status(clickhouse, database).current == 0


@pytest.mark.parametrize("version", [0, 1])
def test_a_worker_refuses_an_older_schema(
    stack_env: dict[str, str], tmp_path: Path, clickhouse: DriverClient, version: int
) -> None:
    deployment = Deployment(stack_env, tmp_path)
    database = deployment.settings.storage.database
    try:
        if version:
            migrate.upgrade(clickhouse, database, to=version)
        worker = WorkerProcess(
            deployment.env, tmp_path / "worker.log", "--stages", "store", upgrade=False
        )
        assert worker.process.wait(120) == 78, worker.tail()
        assert (
            f"ClickHouse schema is at version {version}, this worker needs 4: "
            "run `facestream db upgrade`" in worker.tail()
        )
        assert migrate.status(clickhouse, database).current == version  # nothing migrated
    finally:
        clickhouse.execute(f"DROP DATABASE IF EXISTS {database}")
