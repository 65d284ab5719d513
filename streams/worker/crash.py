"""The worker process: it never outlives a crash, and it always ends once asked to stop.

Left to Faust (mode), a crash of the app, an app task or timer, a stream, the consumer or the
producer marks the services crashed and then stops them gracefully; that stop can hang, and a
SIGTERM during it is taken as the stop already running: the process lives on, idle, until
SIGKILL. And an agent that raises makes Faust commit the consumer's offsets and restart the
agent, after `take_events` acked the batch it died in: that batch would be lost.

So every crash ends the process at once with CRASH_EXIT_CODE, before anything more is
committed: the uncommitted batches are redelivered to the restarted process.
- A crash that no supervisor takes walks the service tree up to its root (mode's
  `Service.crash`), and this worker is the root.
- Agents are supervised by mode's CrashingSupervisor, which takes no crash, and the app does not
  commit when an agent fails (`streams.worker.app.App`).
SIGTERM and SIGINT start the graceful stop and a deadline: a stop still running after
STOP_TIMEOUT_S ends the process anyway, with the exit code the stop would have had.
"""

from __future__ import annotations

import signal
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust

from streams.worker.deadletters import CRASH_EXIT_CODE, exit_now

STOP_TIMEOUT_S = 30.0
_PROJECT = str(Path(__file__).resolve().parents[2])


def _where(error: BaseException) -> str:
    """The outermost frame of the project's own code that `error` (or its cause) went through:
    the function of the task, timer or agent that crashed; else where it was raised."""
    cause = error.__cause__
    frames = traceback.extract_tb(error.__traceback__ or (cause.__traceback__ if cause else None))
    ours = [f for f in frames if f.filename.startswith(_PROJECT) and "-packages" not in f.filename]
    if not (ours or frames):
        return ""
    frame = ours[0] if ours else frames[-1]
    return f" in {frame.name} ({frame.filename}:{frame.lineno})"


class Worker(faust.Worker):
    """faust.Worker that exits on a crash and within `stop_timeout_s` of a stop signal.
    `stopped` gives the exit code of a stop that was asked for."""

    def __init__(
        self,
        app: faust.App,
        stopped: Callable[[], int],
        stop_timeout_s: float = STOP_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.stopped = stopped
        self.stop_timeout_s = stop_timeout_s
        self._ending: Callable[[], int] | None = None  # its exit code, once the worker is ending
        self.deadline: threading.Timer | None = None  # the watchdog of a stop under way

    def _crash(self, reason: BaseException) -> None:
        if self._ending is None:
            exit_now(f"the worker crashed{_where(reason)}: {reason!r}", CRASH_EXIT_CODE, reason)
        else:  # it was stopping anyway: it ends as the stop would have
            exit_now(f"the worker crashed while stopping: {reason!r}", self._ending(), reason)

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        # Where SIGTERM and SIGINT lead; mode ignores a signal while a stop is running.
        self._end_within(self.stopped)
        super()._schedule_shutdown(signal)

    def on_worker_shutdown(self) -> None:
        # Its start returned: after a stop signal (the deadline is set), or it failed to start.
        self._end_within(lambda: CRASH_EXIT_CODE)
        super().on_worker_shutdown()

    def _end_within(self, code: Callable[[], int]) -> None:
        if self._ending is not None:
            return
        self._ending = code
        self.deadline = threading.Timer(self.stop_timeout_s, self._overdue, args=(code,))
        self.deadline.daemon = True
        self.deadline.start()

    def _overdue(self, code: Callable[[], int]) -> None:
        exit_now(
            f"the worker did not stop within {self.stop_timeout_s:.0f} s", code(), exc_info=False
        )
