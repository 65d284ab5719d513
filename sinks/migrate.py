"""Versioned schema migrations, run once per deployment (`facestream db upgrade`), never by
workers racing at start (except embedded chDB, which one process owns).

- `migrations/NNNN_name.sql` holds an `-- +up` and a `-- +down` section; `{db}` is the database.
  Statements are split on `;` outside quotes and comments, so a `;` in a string stays data.
- Every statement is idempotent, so a migration that stopped half-way is simply run again:
  CREATE ... IF NOT EXISTS, DROP ... IF EXISTS, and ALTER TABLE ... ADD COLUMN IF NOT EXISTS /
  DROP COLUMN IF EXISTS (one column per ALTER), which the runner carries out by checking
  system.columns itself, since ClickHouse 18.16 accepts no IF [NOT] EXISTS on columns.
  Anything else is refused when the files are read.
- `<db>.schema_migrations` is a log: one row per step (applied 1 up, 0 down), ordered by `seq`;
  a version's state is its latest row. Append-only, because 18.16 deletes only through
  asynchronous mutations.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sinks.types import ClickHouseClient

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)

IDEMPOTENT = re.compile(
    r"CREATE\s+(TABLE|DATABASE|VIEW|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS\s"
    r"|DROP\s+(TABLE|DATABASE|VIEW)\s+IF\s+EXISTS\s",
    re.IGNORECASE,
)
COLUMN_CHANGE = re.compile(
    r"ALTER\s+TABLE\s+(?P<table>[\w{}.]+)\s+(?P<action>ADD|DROP)\s+COLUMN\s+"
    r"(?P<guard>IF\s+(?:NOT\s+)?EXISTS)\s+(?P<column>\w+)(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: tuple[str, ...]
    down: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Status:
    current: int  # the highest version applied, 0 for none
    applied: list[int]
    pending: list[Migration]  # available and not applied, in order


class SchemaBehind(Exception):
    def __init__(self, current: int, needed: int) -> None:
        super().__init__(f"schema at version {current}, {needed} needed")
        self.current = current
        self.needed = needed


def split(sql: str) -> list[str]:
    """The statements of `sql`, comments removed, split on each `;` outside quotes."""
    statements, current, quote, i = [], [], "", 0
    while i < len(sql):
        char = sql[i]
        if quote:
            current.append(sql[i : i + 2] if char == "\\" else char)
            i += 2 if char == "\\" else 1
            quote = "" if char == quote else quote
            continue
        if sql.startswith("--", i):
            i = len(sql) if (end := sql.find("\n", i)) == -1 else end
            continue
        if sql.startswith("/*", i):
            if (end := sql.find("*/", i + 2)) == -1:
                raise ValueError("a /* comment is not closed")
            current.append(" ")
            i = end + 2
            continue
        if char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
            quote = char if char in "'\"`" else ""
        i += 1
    if quote:
        raise ValueError(f"a {quote} quote is not closed")
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def check_idempotent(statement: str) -> None:
    """Raises ValueError unless running `statement` twice does what running it once does."""
    if IDEMPOTENT.match(statement):
        return
    found = COLUMN_CHANGE.fullmatch(statement)
    if found is None:
        raise ValueError(f"not idempotent (use IF [NOT] EXISTS): {statement[:80]!r}")
    wanted = "IF NOT EXISTS" if found["action"].upper() == "ADD" else "IF EXISTS"
    if " ".join(found["guard"].upper().split()) != wanted:
        raise ValueError(f"{found['action']} COLUMN needs {wanted}: {statement[:80]!r}")
    if re.search(r",\s*(ADD|DROP|MODIFY|CLEAR|COMMENT|RENAME)\s", found["rest"], re.IGNORECASE):
        raise ValueError(f"one column change per ALTER TABLE: {statement[:80]!r}")


def parse(path: Path) -> Migration:
    found = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
    if not found:
        raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
    text = path.read_text().splitlines()
    markers = [line.strip() for line in text]
    if markers.count("-- +up") != 1 or markers.count("-- +down") != 1:
        raise ValueError(f"{path.name}: needs one `-- +up` line and then one `-- +down` line")
    up, down = markers.index("-- +up"), markers.index("-- +down")
    if down < up:
        raise ValueError(f"{path.name}: `-- +down` comes before `-- +up`")
    sections = split("\n".join(text[up + 1 : down])), split("\n".join(text[down + 1 :]))
    for statement in (*sections[0], *sections[1]):
        try:
            check_idempotent(statement)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
    return Migration(int(found[1]), found[2], tuple(sections[0]), tuple(sections[1]))


def available(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = [parse(path) for path in sorted(folder.glob("*.sql"))]
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions) or 0 in versions:
        raise ValueError(f"migration versions must be unique and start at 1: {versions}")
    return migrations


def newest(migrations: list[Migration]) -> int:
    return max((m.version for m in migrations), default=0)


def _columns(client: ClickHouseClient, table: str) -> set[str]:
    database, name = table.split(".")
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = %(database)s AND table = %(table)s",
        {"database": database, "table": name},
    )
    return {row["name"] for row in rows}


def run(client: ClickHouseClient, database: str, statement: str) -> None:
    """Runs one checked statement; a column change only when the column is (not) there."""
    sql = statement.replace("{db}", database)
    found = COLUMN_CHANGE.fullmatch(sql)
    if found is None:
        client.execute(sql)
        return
    table, action, column = found["table"], found["action"].upper(), found["column"]
    if (column in _columns(client, table)) == (action == "DROP"):
        client.execute(f"ALTER TABLE {table} {action} COLUMN {column}{found['rest']}")


def _ensure_log(client: ClickHouseClient, database: str) -> None:
    client.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    run(
        client,
        database,
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, "
        "applied_at DateTime('UTC'), applied UInt8 DEFAULT 1, seq UInt64 DEFAULT 0) "
        "ENGINE = MergeTree ORDER BY version",
    )
    # A log written before downgrades existed: every row an upgrade.
    for column in ("applied UInt8 DEFAULT 1", "seq UInt64 DEFAULT 0"):
        run(
            client,
            database,
            f"ALTER TABLE {{db}}.schema_migrations ADD COLUMN IF NOT EXISTS {column}",
        )


def applied_versions(client: ClickHouseClient, database: str) -> set[int]:
    """The versions applied now; reads only (no log yet: none)."""
    columns = _columns(client, f"{database}.schema_migrations")
    if not columns:
        return set()
    state = "argMax(applied, seq)" if {"applied", "seq"} <= columns else "1"
    rows = client.query(
        f"SELECT version, {state} AS applied FROM {database}.schema_migrations GROUP BY version"
    )
    return {int(row["version"]) for row in rows if int(row["applied"])}


def status(client: ClickHouseClient, database: str) -> Status:
    applied = applied_versions(client, database)
    pending = [m for m in available() if m.version not in applied]
    return Status(max(applied, default=0), sorted(applied), pending)


def require_newest(client: ClickHouseClient, database: str) -> None:
    """Raises SchemaBehind when a migration this code has is not applied."""
    found = status(client, database)
    if found.pending:
        raise SchemaBehind(found.current, newest(available()))


def _record(client: ClickHouseClient, database: str, migration: Migration, applied: bool) -> None:
    (last,) = client.query(f"SELECT max(seq) AS seq FROM {database}.schema_migrations")
    row = {
        "version": migration.version,
        "name": migration.name,
        "applied_at": datetime.now(UTC),
        "applied": int(applied),
        "seq": int(last["seq"]) + 1,
    }
    client.insert(f"{database}.schema_migrations", [row])


def upgrade(client: ClickHouseClient, database: str, to: int | None = None) -> list[Migration]:
    """Applies every migration not applied yet, up to version `to` (default: all), in order;
    returns those it applied. Re-running is a no-op, and finishes one that stopped half-way."""
    _ensure_log(client, database)
    done = applied_versions(client, database)
    steps = [m for m in available() if m.version not in done and (to is None or m.version <= to)]
    _run_steps(client, database, steps, applied=True)
    return steps


def downgrade(client: ClickHouseClient, database: str, to: int) -> list[Migration]:
    """Reverts every applied migration above version `to`, newest first; returns those."""
    _ensure_log(client, database)
    done = applied_versions(client, database)
    known = {m.version: m for m in available()}
    if unknown := sorted(v for v in done - known.keys() if v > to):
        raise ValueError(f"versions {unknown} are applied but have no migration file here")
    steps = [known[v] for v in sorted(done, reverse=True) if v > to]
    _run_steps(client, database, steps, applied=False)
    return steps


def _run_steps(
    client: ClickHouseClient, database: str, steps: list[Migration], *, applied: bool
) -> None:
    """Runs each migration's up (applied) or down statements, recording each as it finishes."""
    for migration in steps:
        for statement in migration.up if applied else migration.down:
            run(client, database, statement)
        _record(client, database, migration, applied)
        log.info("%s migration %s", "applied" if applied else "reverted", migration.label)
