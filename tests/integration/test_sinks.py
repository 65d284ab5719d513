"""The storage layer on the real ClickHouse server (Debian's 18.16) and the real InfluxDB 1.x."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from sinks.clickhouse import DriverClient
from sinks.influx import InfluxTarget, InfluxWriter, detect_version
from streams.settings import Settings
from tests import sink_checks
from tests.integration.conftest import influx_query

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(clickhouse: DriverClient) -> str:
    name = f"sinks_{uuid.uuid4().hex[:8]}"
    sink_checks.migrations_apply_once(clickhouse, name)
    return name


def test_redelivered_event_is_stored_once(clickhouse: DriverClient, database: str) -> None:
    sink_checks.redelivered_event_is_stored_once(clickhouse, database)


def test_face_upsert_and_tombstone(clickhouse: DriverClient, database: str) -> None:
    sink_checks.face_upsert_and_tombstone(clickhouse, database)


def target(settings: Settings, **changes: object) -> InfluxTarget:
    monitoring = settings.influx_monitoring
    fields = {"host": monitoring.host, "port": monitoring.port, "database": monitoring.database}
    return InfluxTarget(**(fields | changes))  # type: ignore[arg-type]


def test_influx_writer_writes_points(settings: Settings, stack_env: dict[str, str]) -> None:
    assert detect_version(target(settings)) == 1
    writer = InfluxWriter(target(settings))
    run = uuid.uuid4().hex[:8]
    for i in range(5):
        writer.add("writer_test", {"run": run, "stage": "detect"}, {"processed": i, "ms": 1.5})
    assert writer.flush() == 5
    result = influx_query(
        stack_env,
        f"SELECT count(processed) FROM writer_test WHERE run = '{run}'",
        settings.influx_monitoring.database,
    )
    assert result["results"][0]["series"][0]["values"][0][1] == 5


def test_influx_down_drops_and_counts_without_raising(settings: Settings) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    writer = InfluxWriter(target(settings, port=port, version=1), timeout=0.5)
    writer.add("m", {"stage": "detect"}, {"processed": 1})
    writer.add("m", {"stage": "match"}, {"processed": 1})
    started = time.monotonic()
    assert writer.flush() == 0
    assert time.monotonic() - started < 5
    assert writer.dropped == 2


def test_hostile_values_round_trip_as_data(clickhouse: DriverClient, database: str) -> None:
    sink_checks.hostile_values_round_trip(clickhouse, database)
