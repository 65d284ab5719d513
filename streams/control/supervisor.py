"""WORKER_COUNT: one `facestream worker` (or `facestream api`) command running several
processes.

The processes share the topics' partitions through their consumer group, as separately started
workers do. The supervisor restarts a process that ends while it was not asked to stop: at once
when it exits 0 (stopped by someone else) or 75 (restarting to apply new settings), after a
growing backoff when it fails. SIGTERM or SIGINT stops them all, and then the supervisor.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from streams.control.process import SUPERVISED_ENV
from streams.control.reload import RESTART_EXIT_CODE, SHUTDOWN_EXIT_CODE

log = logging.getLogger(__name__)

SLOT_ENV = "FACESTREAM_WORKER_SLOT"  # the index of the slot a supervised process runs in
MAX_BACKOFF_S = 30.0
POLL_S = 0.05


@dataclass
class _Slot:
    """One of the `count` places a worker process runs in."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    start_at: float = 0.0  # when to start the next process, while there is none
    failures: int = 0  # in a row, for the backoff
    last_quick_restart: float = -MAX_BACKOFF_S


def _describe(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}"


class _Supervisor:
    def __init__(
        self,
        count: int,
        command: list[str],
        backoff_s: float,
        stop_timeout_s: float,
        pass_fds: Sequence[int] = (),
    ):
        self.slots = [_Slot(i) for i in range(count)]
        self.command = command
        self.pass_fds = pass_fds
        self.backoff_s = backoff_s
        self.stop_timeout_s = stop_timeout_s
        self.signals: list[int] = []  # received, not yet forwarded
        self.exit_code = 0

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)  # forwarded by the loop, which knows every live process

    def run(self) -> int:
        stopping_since: float | None = None
        while True:
            now = time.monotonic()
            if self.signals:
                signum = self.signals.pop(0)
                log.info("%s: stopping the workers", signal.Signals(signum).name)
                if stopping_since is None:
                    stopping_since = now
                self._send(signum)
            for slot in self.slots:
                if slot.process is None:
                    if stopping_since is None and now >= slot.start_at:
                        self._start(slot, now)
                elif slot.process.poll() is not None:
                    self._ended(slot, slot.process, now, stopping_since is not None)
            if stopping_since is not None:
                if all(slot.process is None for slot in self.slots):
                    log.info("all workers stopped")
                    return self.exit_code
                if now - stopping_since > self.stop_timeout_s:
                    return self._kill_remaining()
            time.sleep(POLL_S)

    def _send(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signum)

    def _start(self, slot: _Slot, now: float) -> None:
        # Its own process group: a terminal's Ctrl-C reaches the workers once, through here.
        slot.process = subprocess.Popen(
            self.command,
            # The slot names its consumer's static membership (streams.worker.app): a restarted
            # process takes its partitions back at once.
            env={**os.environ, SUPERVISED_ENV: "1", SLOT_ENV: str(slot.index)},
            process_group=0,
            pass_fds=self.pass_fds,
        )
        slot.started = now
        log.info("worker %d started, pid %d", slot.index, slot.process.pid)

    def _ended(
        self, slot: _Slot, process: subprocess.Popen[bytes], now: float, stopping: bool
    ) -> None:
        pid, code, uptime = process.pid, process.returncode, now - slot.started
        slot.process = None
        if stopping:
            log.info("worker %d (pid %d) %s", slot.index, pid, _describe(code))
            return
        if code == SHUTDOWN_EXIT_CODE:  # its new settings cannot work: nor can its siblings'
            log.critical(
                "worker %d (pid %d) shut down on its settings: stopping all", slot.index, pid
            )
            self.exit_code = SHUTDOWN_EXIT_CODE
            self.signals.append(signal.SIGTERM)
            return
        if uptime >= MAX_BACKOFF_S:  # it had been running well: a fresh count
            slot.failures = 0
        # At once, though not twice within a backoff: a process that keeps exiting 0 at start
        # (a crash reported as a clean stop) would otherwise be restarted in a tight loop.
        if code in (0, RESTART_EXIT_CODE) and now - slot.last_quick_restart >= self.backoff_s:
            log.info("worker %d (pid %d) %s: starting it again", slot.index, pid, _describe(code))
            slot.last_quick_restart = slot.start_at = now
            return
        slot.failures += 1
        delay = min(self.backoff_s * 2 ** (slot.failures - 1), MAX_BACKOFF_S)
        slot.start_at = now + delay
        log.warning(
            "worker %d (pid %d) %s after %.1f s: starting it again in %.1f s",
            slot.index,
            pid,
            _describe(code),
            uptime,
            delay,
        )

    def _kill_remaining(self) -> int:
        for slot in self.slots:
            if slot.process is not None:
                log.error(
                    "worker %d (pid %d) still running after %.0f s: killing it",
                    slot.index,
                    slot.process.pid,
                    self.stop_timeout_s,
                )
                slot.process.kill()
                slot.process.wait()
        return 1


def run_workers(
    count: int,
    argv: Sequence[str],
    command: Sequence[str] | None = None,
    backoff_s: float = 1.0,
    stop_timeout_s: float = 60.0,
    pass_fds: Sequence[int] = (),
) -> int:
    """Run `count` worker processes (`command`, by default `facestream worker`, then `argv`)
    until SIGTERM or SIGINT; 0 once all stopped, 1 if some had to be killed. `pass_fds` stay
    open in them (the API processes' listening socket)."""
    base = list(command or [sys.executable, "-m", "streams.cli", "worker"])
    supervisor = _Supervisor(count, [*base, *argv], backoff_s, stop_timeout_s, pass_fds)
    previous = {s: signal.signal(s, supervisor.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info("supervising %d worker processes", count)
    try:
        return supervisor.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
