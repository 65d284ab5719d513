"""Schema migration behaviour shared by the chDB (unit) and ClickHouse server (integration)
tests; each check takes a database of its own."""

from __future__ import annotations

import pytest

from sinks import migrate
from sinks.types import ClickHouseClient

TABLES = {"events", "faces", "descriptors", "samples", "schema_migrations"}


def tables(client: ClickHouseClient, database: str) -> set[str]:
    rows = client.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": database})
    return {row["name"] for row in rows}


def _has_column(client: ClickHouseClient, database: str, table: str, column: str) -> bool:
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(table)s "
        "AND name = %(column)s",
        {"db": database, "table": table, "column": column},
    )
    return len(rows) == 1


def has_face_indexes(client: ClickHouseClient, database: str) -> bool:
    return _has_column(client, database, "events", "face_indexes")


def has_attributes(client: ClickHouseClient, database: str) -> bool:
    """Migration 3: both tables' attribute columns."""
    return _has_column(client, database, "events", "face_ages") and _has_column(
        client, database, "faces", "attributes_json"
    )


def versions(migrations: list[migrate.Migration]) -> list[int]:
    return [m.version for m in migrations]


def upgrade_then_rerun_is_a_noop(client: ClickHouseClient, database: str) -> None:
    assert migrate.status(client, database).pending == migrate.available()  # reads only
    assert tables(client, database) == set()
    assert versions(migrate.upgrade(client, database)) == [1, 2, 3, 4]
    assert migrate.upgrade(client, database) == []
    assert tables(client, database) == TABLES and has_face_indexes(client, database)
    assert has_attributes(client, database)
    status = migrate.status(client, database)
    assert (status.current, status.applied, status.pending) == (4, [1, 2, 3, 4], [])
    migrate.require_newest(client, database)


def upgrade_to_a_version_and_status(client: ClickHouseClient, database: str) -> None:
    assert versions(migrate.upgrade(client, database, to=1)) == [1]
    status = migrate.status(client, database)
    assert (status.current, versions(status.pending)) == (1, [2, 3, 4])
    assert not has_face_indexes(client, database)
    with pytest.raises(migrate.SchemaBehind) as behind:
        migrate.require_newest(client, database)
    assert (behind.value.current, behind.value.needed) == (1, 4)
    assert versions(migrate.upgrade(client, database)) == [2, 3, 4]
    assert has_face_indexes(client, database) and has_attributes(client, database)


def downgrade_and_upgrade_again(client: ClickHouseClient, database: str) -> None:
    migrate.upgrade(client, database)
    assert versions(migrate.downgrade(client, database, to=2)) == [4, 3]
    assert "samples" not in tables(client, database)
    assert not has_attributes(client, database) and has_face_indexes(client, database)
    assert versions(migrate.downgrade(client, database, to=1)) == [2]
    assert not has_face_indexes(client, database)
    assert versions(migrate.downgrade(client, database, to=0)) == [1]
    assert migrate.downgrade(client, database, to=0) == []
    assert tables(client, database) == {"schema_migrations"}
    status = migrate.status(client, database)
    assert (status.current, versions(status.pending)) == (0, [1, 2, 3, 4])
    assert versions(migrate.upgrade(client, database)) == [1, 2, 3, 4]
    assert tables(client, database) == TABLES and has_face_indexes(client, database)
    assert migrate.status(client, database).current == 4


def partial_apply_then_rerun(client: ClickHouseClient, database: str) -> None:
    """Every statement ran but nothing was recorded (a process killed before the log row):
    the re-run runs them all again and records every version."""
    migrate.upgrade(client, database, to=0)  # the database and its log only
    for migration in migrate.available():
        for statement in migration.up:
            migrate.run(client, database, statement)
    assert migrate.status(client, database).current == 0
    assert versions(migrate.upgrade(client, database)) == [1, 2, 3, 4]
    assert tables(client, database) == TABLES and has_face_indexes(client, database)
    assert has_attributes(client, database)


# Every check above, each run by both tests on a database of its own.
CHECKS = [
    upgrade_then_rerun_is_a_noop,
    upgrade_to_a_version_and_status,
    downgrade_and_upgrade_again,
    partial_apply_then_rerun,
]
