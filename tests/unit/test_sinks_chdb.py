"""The storage layer on embedded ClickHouse (chDB), the quick start's default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.clickhouse import ChdbClient, connect
from tests import sink_checks

DB = "facestream"


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbClient]:
    client = connect(None, tmp_path_factory.mktemp("chdb"))
    assert isinstance(client, ChdbClient)
    sink_checks.migrations_apply_once(client, DB)
    yield client
    client.close()


def test_redelivered_event_is_stored_once(chdb: ChdbClient) -> None:
    sink_checks.redelivered_event_is_stored_once(chdb, DB)


def test_face_upsert_and_tombstone(chdb: ChdbClient) -> None:
    sink_checks.face_upsert_and_tombstone(chdb, DB)


def test_a_bad_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clickhouse://host:port"):
        connect("http://127.0.0.1:8123", tmp_path)


def test_hostile_values_round_trip_as_data(chdb: ChdbClient) -> None:
    sink_checks.hostile_values_round_trip(chdb, DB)
