"""Schema migrations on embedded ClickHouse (chDB) in a tmp folder, and how files are read."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sinks import migrate
from sinks.clickhouse import ChdbClient
from sinks.types import ClickHouseClient
from tests import migration_checks


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbClient]:
    client = ChdbClient(tmp_path_factory.mktemp("chdb"))
    yield client
    client.close()


@pytest.mark.parametrize("check", migration_checks.CHECKS)
def test_migrations(chdb: ChdbClient, check: Callable[[ClickHouseClient, str], None]) -> None:
    check(chdb, f"mig_{uuid.uuid4().hex[:8]}")


def test_statements_split_outside_quotes_and_comments() -> None:
    sql = (
        "CREATE TABLE IF NOT EXISTS a (s String DEFAULT 'x;y') ENGINE = Log; -- a; comment\n"
        "/* ; */ DROP TABLE IF EXISTS b; SELECT 'it''s;', 'q\\';', \"c;d\"\n;\n"
    )
    assert migrate.split(sql) == [
        "CREATE TABLE IF NOT EXISTS a (s String DEFAULT 'x;y') ENGINE = Log",
        "DROP TABLE IF EXISTS b",
        "SELECT 'it''s;', 'q\\';', \"c;d\"",
    ]
    with pytest.raises(ValueError, match="not closed"):
        migrate.split("SELECT 'open;")


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("CREATE TABLE {db}.t (a UInt8) ENGINE = Log", "not idempotent"),
        ("DROP TABLE {db}.t", "not idempotent"),
        ("ALTER TABLE {db}.t ADD COLUMN c UInt8", "not idempotent"),
        ("ALTER TABLE {db}.t DROP COLUMN IF NOT EXISTS c", "needs IF EXISTS"),
        ("ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS c UInt8, DROP COLUMN d", "one column"),
        ("INSERT INTO {db}.t VALUES (1)", "not idempotent"),
    ],
)
def test_a_statement_that_is_not_idempotent_is_refused(statement: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        migrate.check_idempotent(statement)


def test_the_shipped_migrations_are_read(tmp_path: Path) -> None:
    assert [m.label for m in migrate.available()] == [
        "0001_initial",
        "0002_event_face_indexes",
        "0003_basic_attributes",
        "0004_samples",
    ]
    (tmp_path / "0001_one.sql").write_text("CREATE TABLE IF NOT EXISTS {db}.t (a UInt8)\n")
    with pytest.raises(ValueError, match=r"0001_one.sql: needs one `-- \+up`"):
        migrate.available(tmp_path)
    (tmp_path / "0001_one.sql").write_text("-- +down\n-- +up\n")
    with pytest.raises(ValueError, match="comes before"):
        migrate.available(tmp_path)
