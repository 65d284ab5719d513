"""What a worker and an API process share: settings from every source (the config topic
winning), the config follower when --config-reload is on, and the graceful restart it may ask
for. Each process's main (streams.worker.main, streams.api.main) runs between these."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from streams.control.config import read_state
from streams.control.reload import (
    RESTART_EXIT_CODE,
    SHUTDOWN_EXIT_CODE,
    ConfigFollower,
    ProcessControl,
    apply_logging_level,
)
from streams.kafka.topics import ensure_topics
from streams.settings import LiveSettings, Settings

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
