"""The long-running processes: `worker` and `api`, with their config-reload options."""

from __future__ import annotations

import argparse
import os

from streams.cli.common import ARGV, number_in
from streams.settings import get_settings


def _apply_reload_options(args: argparse.Namespace) -> None:
    """Passed on by environment, so processes started for this one follow them too."""
    from streams.control.process import PULLING_ENV, RELOAD_ENV

    if args.config_reload:
        os.environ[RELOAD_ENV] = "1"
    if args.pulling_time is not None:
        os.environ[PULLING_ENV] = str(args.pulling_time)


def _worker(args: argparse.Namespace) -> int:
    from streams.control.process import SUPERVISED_ENV
    from streams.worker.agents import STAGES
    from streams.worker.main import run_worker

    _apply_reload_options(args)
    count = args.workers or get_settings().worker.worker_count
    if count > 1 and os.environ.get(SUPERVISED_ENV) != "1":
        from streams.control.supervisor import run_workers

        # The reload options travel by environment; only the stages need passing on.
        return run_workers(count, ["--stages", args.stages] if args.stages else [])
    stages = args.stages.split(",") if args.stages else list(STAGES)
    return run_worker(stages, ARGV)


def worker_count(text: str) -> int:
    """Bounded as the setting is: 0 and negative counts are refused, with the reason."""
    from pydantic import ValidationError

    from streams.settings import WorkerSettings

    try:
        return WorkerSettings.model_validate({"worker_count": text}).worker_count
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"{text}: {error.errors()[0]['msg']}") from error


pulling_time = number_in(0, 3600, float)  # seconds; 0 = at once


def _api(args: argparse.Namespace) -> int:
    from streams.api.main import run_api
    from streams.control.process import API_SOCKET_ENV, SUPERVISED_ENV

    _apply_reload_options(args)
    api = get_settings().api
    host, port = args.host or api.host, args.port or api.port
    if args.workers > 1 and os.environ.get(SUPERVISED_ENV) != "1":
        import sys

        import uvicorn

        from streams.control.supervisor import run_workers

        # Bound here, once, and shared: the kernel hands each connection to one process, and a
        # process that restarts leaves the port open meanwhile (connections wait in its backlog).
        listener = uvicorn.Config("", host=host, port=port).bind_socket()
        os.environ[API_SOCKET_ENV] = str(listener.fileno())
        command = [sys.executable, "-m", "streams.cli", "api"]
        return run_workers(args.workers, [], command, pass_fds=[listener.fileno()])
    return run_api(host, port, ARGV)


def _add_reload_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config-reload",
        action="store_true",
        help="follow the config topic and apply changes while running (restarting gracefully "
        "for sections that need it)",
    )
    command.add_argument(
        "--pulling-time",
        type=pulling_time,
        help="seconds between checks of the config topic (default 10; 0 = at once)",
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`worker` and `api`."""
    worker = sub.add_parser(
        "worker",
        help="run pipeline stages (all by default); start several to share partitions",
    )
    worker.add_argument(
        "--stages", help="comma-separated: detect,liveness,extract,match,store (default: all)"
    )
    worker.add_argument(
        "--workers",
        type=worker_count,
        metavar="N",
        help="worker processes, restarted when they fail (default: FACESTREAM_WORKER__"
        "WORKER_COUNT, 1; at most 64)",
    )
    _add_reload_arguments(worker)
    worker.set_defaults(run=_worker)

    api = sub.add_parser("api", help="serve the HTTP API (docs at /v1/docs)")
    api.add_argument("--host", help="address to bind (default: FACESTREAM_API__HOST)")
    api.add_argument("--port", type=int, help="port (default: FACESTREAM_API__PORT, 5000)")
    api.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        metavar="N",
        help="API processes sharing the port, restarted when they fail (default 1; at most 64)",
    )
    _add_reload_arguments(api)
    api.set_defaults(run=_api)
