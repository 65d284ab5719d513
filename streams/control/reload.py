"""Automatic configuration reload: each process follows the config topic and applies changes.

Changes of live sections apply at once through LiveSettings; a change of a restart section
(RESTART_SECTIONS) makes the process stop gracefully (offsets committed, buffers flushed) and
start again with the new settings. A new ClickHouse or InfluxDB connection setting is checked
first: a failed check is retried every 5 s, the old settings staying in force meanwhile, and
after 5 failed attempts the process shuts down cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable

from sinks.clickhouse import connect
from sinks.influx import check as check_influx
from streams.control.config import ConfigState
from streams.control.monitoring import influx_target
from streams.kafka import topics
from streams.kafka.reader import TopicReader
from streams.settings import RESTART_SECTIONS, SECTIONS, LiveSettings, Settings

log = logging.getLogger(__name__)

RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: "run me again", for the supervisor
SHUTDOWN_EXIT_CODE = 78  # EX_CONFIG: the settings cannot work; the supervisor stops them all
CHECK_ATTEMPTS = 5
CHECK_INTERVAL_S = 5.0


def apply_logging_level(old: Settings, new: Settings) -> None:
    level = new.logging.level
    if old.logging.level != level or logging.getLogger().level != logging.getLevelName(level):
        logging.getLogger().setLevel(level)
        for handler in logging.getLogger().handlers:
            handler.setLevel(level)
        log.warning("logging level is now %s", level)


class ProcessControl:
    """How the follower ends its own process: both ways go through SIGTERM, so the process
    stops the way it always does when asked to, and the caller then exits or starts again."""

    def __init__(self) -> None:
        self.restart_requested = False
        self.shutdown_requested = False

    def restart(self) -> None:
        self.restart_requested = True
        os.kill(os.getpid(), signal.SIGTERM)

    def shutdown(self) -> None:
        self.shutdown_requested = True
        os.kill(os.getpid(), signal.SIGTERM)


def check_clickhouse(settings: Settings) -> None:
    url = settings.storage.clickhouse_url
    if url:  # embedded chDB needs no connection
        client = connect(url, settings.storage.chdb_path)
        try:
            client.query("SELECT 1 AS ok")
        finally:
            client.close()


def connection_checks(old: Settings, new: Settings) -> list[tuple[str, Callable[[], None]]]:
    checks: list[tuple[str, Callable[[], None]]] = []
    if old.storage != new.storage:
        checks.append(("ClickHouse", lambda: check_clickhouse(new)))
    monitoring = new.influx_monitoring
    if old.influx_monitoring != monitoring and monitoring.send_data_for_monitoring:
        checks.append(("InfluxDB", lambda: check_influx(influx_target(monitoring), 2.0)))
    return checks


async def passes(name: str, check: Callable[[], None]) -> bool:
    for attempt in range(1, CHECK_ATTEMPTS + 1):
        try:
            await asyncio.to_thread(check)
            return True
        except Exception as error:
            log.error(
                "new %s setting failed its check (attempt %d of %d): %s",
                name,
                attempt,
                CHECK_ATTEMPTS,
                error,
            )
        if attempt < CHECK_ATTEMPTS:
            await asyncio.sleep(CHECK_INTERVAL_S)
    return False


class ConfigFollower:
    def __init__(
        self,
        live: LiveSettings,
        control: ProcessControl,
        pulling_time: float = 10.0,
        before_restart: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.live = live
        self.control = control
        self.pulling_time = pulling_time
        self.before_restart = before_restart
        self.state = ConfigState()
        self._reported: dict[str, str] = {}

    async def run(self) -> None:
        applied = -1
        last_check = 0.0
        async with TopicReader(self.live.current, topics.CONFIG, from_beginning=True) as reader:
            while True:
                for m in await reader.read_raw(timeout=0.2):  # the state refuses what is bad
                    self.state.apply(m.key, m.value)
                self._report_rejections()
                due = time.monotonic() - last_check >= self.pulling_time
                if due and await reader.caught_up():
                    last_check = time.monotonic()
                    if self.state.version != applied:
                        applied = self.state.version
                        if not await self.apply(self.state.settings()):
                            return

    def _report_rejections(self) -> None:
        for section, reason in self.state.rejected.items():
            if self._reported.get(section) != reason:
                log.error(
                    "config section %r refused, keeping its last good value: %s", section, reason
                )
        self._reported = dict(self.state.rejected)

    async def apply(self, new: Settings) -> bool:
        """Applies `new`; False when the process is going down (restart or shutdown)."""
        old = self.live.current
        changed = [s for s in SECTIONS if getattr(old, s) != getattr(new, s)]
        if not changed:
            return True
        log.warning("settings changed: %s", ", ".join(changed))
        for name, check in connection_checks(old, new):
            if not await passes(name, check):
                log.critical("new %s setting failed %d checks: shutting down", name, CHECK_ATTEMPTS)
                self.control.shutdown()
                return False
        restart = sorted(RESTART_SECTIONS.intersection(changed))
        if restart:
            log.warning("restarting to apply %s", ", ".join(restart))
            if self.before_restart is not None:
                await self.before_restart()
            self.control.restart()
            return False
        self.live.update(new)
        return True
