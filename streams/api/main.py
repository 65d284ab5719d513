"""The API process: uvicorn serving the app on its port or on the supervisor's shared socket."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Sequence

import uvicorn

from streams.control.process import API_SOCKET_ENV, STARTUP_FAILURE_EXIT_CODE, finish
from streams.settings import Settings


def run_api(host: str, port: int, argv: Sequence[str]) -> int:
    """One API process: on `host`:`port`, or on the listening socket that the supervisor of
    several shares with its processes (API_SOCKET_ENV)."""
    level = Settings().logging.level
    config = uvicorn.Config(
        "streams.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        log_level=level.lower(),
        access_log=level == "DEBUG",  # a log line per request: ~7 % of ingest's CPU
    )
    server = uvicorn.Server(config)
    # Once it has shut down, uvicorn raises again the signal that stopped it, and a restart is
    # asked for by SIGTERM (ProcessControl): by default that would end the process before
    # `finish` starts it again. A stop then ends here as a return, exit code from `finish`.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: setattr(server, "should_exit", True))
    shared = os.environ.get(API_SOCKET_ENV)
    server.run(sockets=None if shared is None else [socket.socket(fileno=int(shared))])
    if not server.started:
        return STARTUP_FAILURE_EXIT_CODE
    return finish(argv)
