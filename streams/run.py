"""Running a worker or an API process: settings from every source (the config topic winning),
the config follower when --config-reload is on, and the graceful restart it may ask for."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from streams.config import read_state
from streams.reload import (
    RESTART_EXIT_CODE,
    SHUTDOWN_EXIT_CODE,
    ConfigFollower,
    ProcessControl,
    apply_logging_level,
)
from streams.settings import LiveSettings, Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)

SUPERVISED_ENV = "FACESTREAM_SUPERVISED"  # set by the supervisor in the processes it starts
RELOAD_ENV = "FACESTREAM_CONFIG_RELOAD"  # "1": follow the config topic
PULLING_ENV = "FACESTREAM_PULLING_TIME"  # seconds between checks of the config topic
API_SOCKET_ENV = "FACESTREAM_API_SOCKET_FD"  # the listening socket API processes share
STARTUP_FAILURE_EXIT_CODE = 3  # uvicorn's


async def startup_settings() -> Settings:
    """Defaults, config file and environment, then the config topic's sections on top."""
    base = Settings()
    await ensure_topics(base.kafka)
    state = await read_state(base)
    for section, reason in state.rejected.items():
        log.error("config section %r refused, using the value below it: %s", section, reason)
    return state.settings()


def live_settings() -> LiveSettings:
    # In a thread with its own loop: uvicorn calls the API factory from inside its running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        settings = pool.submit(asyncio.run, startup_settings()).result()
    live = LiveSettings(settings)
    live.subscribe(apply_logging_level)
    apply_logging_level(live.current, live.current)
    return live


# One per process: the config follower asks through it, the command's main acts on it.
CONTROL = ProcessControl()


def follower(live: LiveSettings) -> ConfigFollower | None:
    if os.environ.get(RELOAD_ENV) != "1":
        return None
    return ConfigFollower(live, CONTROL, float(os.environ.get(PULLING_ENV, "10")))


def finish(argv: Sequence[str]) -> int:
    """After the process's main loop stopped: start again, or report how it ended."""
    if CONTROL.restart_requested:
        if os.environ.get(SUPERVISED_ENV) == "1":
            return RESTART_EXIT_CODE  # the supervisor starts it again
        log.warning("starting again with the new settings")
        os.execv(sys.executable, [sys.executable, "-m", "streams.cli", *argv])
    return SHUTDOWN_EXIT_CODE if CONTROL.shutdown_requested else 0


def run_worker(stages: Sequence[str], argv: Sequence[str]) -> int:
    from streams.agents import Pipeline
    from streams.app import create_app
    from streams.crash import Worker
    from streams.deadletters import CRASH_EXIT_CODE

    live = live_settings()
    settings = live.current
    app = create_app(settings)
    Pipeline(app, live, stages)
    config = follower(live)
    if config is not None:
        app.task(config.run)
    log.info("worker starting: stages %s", ", ".join(stages))
    worker = Worker(
        app,
        stopped=lambda: finish(argv),
        loglevel=settings.logging.level.lower(),
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as end:  # how Faust's worker always ends; not 0 when it failed to start
        if end.code:
            return CRASH_EXIT_CODE
    return finish(argv)


def run_api(host: str, port: int, argv: Sequence[str]) -> int:
    """One API process: on `host`:`port`, or on the listening socket that the supervisor of
    several shares with its processes (API_SOCKET_ENV)."""
    import uvicorn

    config = uvicorn.Config(
        "streams.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        log_level=Settings().logging.level.lower(),
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
