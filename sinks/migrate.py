"""Versioned schema migrations: `migrations/NNNN_name.sql`, applied in order, recorded."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sinks.types import ClickHouseClient

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self, database: str) -> list[str]:
        sql = "\n".join(
            line
            for line in self.path.read_text().splitlines()
            if not line.lstrip().startswith("--")
        )
        return [s.strip().replace("{db}", database) for s in sql.split(";") if s.strip()]


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path))
    return found


def applied_versions(client: ClickHouseClient, database: str) -> set[int]:
    rows = client.query(f"SELECT version FROM {database}.schema_migrations")
    return {int(row["version"]) for row in rows}


def upgrade(client: ClickHouseClient, database: str) -> list[Migration]:
    """Apply every migration not applied yet; returns those it applied. Safe to re-run."""
    client.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.execute(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime('UTC')) "
        "ENGINE = MergeTree ORDER BY version"
    )
    done = applied_versions(client, database)
    applied = []
    for migration in available():
        if migration.version in done:
            continue
        for statement in migration.statements(database):
            client.execute(statement)
        client.insert(
            f"{database}.schema_migrations",
            [
                {
                    "version": migration.version,
                    "name": migration.name,
                    "applied_at": datetime.now(UTC),
                }
            ],
        )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration)
    return applied
