"""WORKER_COUNT: the supervisor starts, restarts and stops worker processes.

The supervisor runs in its own process (it installs signal handlers and gets SIGTERM); its
workers are a tiny Python program that marks its start and its SIGTERM in files named after
its pid, and exits with the code written to `<pid>.exit`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams import cli
from streams.control.process import SUPERVISED_ENV
from streams.control.reload import SHUTDOWN_EXIT_CODE
from streams.settings import get_settings

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import os, signal, sys, time
from pathlib import Path

me = Path(sys.argv[1]) / str(os.getpid())
assert os.environ["FACESTREAM_SUPERVISED"] == "1"

def stop(signum, frame):
    me.with_suffix(".stopped").touch()
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
me.with_suffix(".started").touch()
while not me.with_suffix(".exit").exists():
    time.sleep(0.01)
time.sleep(0.01)  # the code is written right after the file is created
sys.exit(int(me.with_suffix(".exit").read_text()))
"""

SUPERVISOR = """
import logging, sys
from streams.control.supervisor import run_workers

logging.basicConfig(level=logging.INFO)
count, folder, backoff = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
sys.exit(run_workers(count, [folder], [sys.executable, "-c", sys.argv[4]], backoff_s=backoff))
"""


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds it took for `condition` to hold."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - start


class Supervised:
    def __init__(self, folder: Path, count: int, backoff_s: float) -> None:
        self.folder = folder
        args = [str(count), str(folder), str(backoff_s), CHILD]
        self.process = subprocess.Popen([sys.executable, "-c", SUPERVISOR, *args], cwd=REPO)
        wait_for(lambda: len(self.started()) == count)

    def started(self) -> list[int]:
        """Pids of the workers started so far, in order."""
        marks = sorted(self.folder.glob("*.started"), key=lambda p: p.stat().st_mtime_ns)
        return [int(p.stem) for p in marks]

    def stopped(self) -> set[int]:
        return {int(p.stem) for p in self.folder.glob("*.stopped")}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=5)


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Callable[[int, float], Supervised]]:
    made: list[Supervised] = []

    def make(count: int, backoff_s: float) -> Supervised:
        made.append(Supervised(tmp_path, count, backoff_s))
        return made[-1]

    yield make
    for s in made:  # after a failed test: the supervisor takes its workers down with it
        if s.process.poll() is None:
            try:
                s.stop()
            except subprocess.TimeoutExpired:
                s.process.kill()
                s.process.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_starts_the_workers_and_sigterm_stops_them_all(
    supervised: Callable[[int, float], Supervised],
) -> None:
    s = supervised(3, 1.0)
    workers = s.started()
    assert len(set(workers)) == 3
    assert s.stop() == 0
    assert s.stopped() == set(workers)  # each got SIGTERM and stopped on its own
    assert not any(alive(pid) for pid in workers)
    assert len(s.started()) == 3  # none was started again while stopping


def test_a_killed_worker_is_restarted_after_a_backoff(
    supervised: Callable[[int, float], Supervised],
) -> None:
    s = supervised(2, 1.0)
    first, second = s.started()
    os.kill(first, signal.SIGKILL)
    took = wait_for(lambda: len(s.started()) == 3)
    assert took >= 0.9  # the backoff, less the supervisor's poll
    assert alive(second)
    assert s.stop() == 0
    assert s.stopped() == {second, s.started()[2]}


@pytest.mark.parametrize("code", [75, 0])
def test_a_worker_exiting_75_or_0_is_restarted_at_once(
    supervised: Callable[[int, float], Supervised], code: int
) -> None:
    s = supervised(2, 3.0)  # a backoff long enough to tell "at once" from it
    first, second = s.started()
    s.folder.joinpath(f"{first}.exit").write_text(str(code))
    assert wait_for(lambda: len(s.started()) == 3) < 1.5
    assert not alive(first) and alive(second)
    assert s.stop() == 0


def test_a_worker_shutting_down_on_its_settings_stops_them_all(
    supervised: Callable[[int, float], Supervised],
) -> None:
    s = supervised(2, 0.2)
    first, second = s.started()
    s.folder.joinpath(f"{first}.exit").write_text(str(SHUTDOWN_EXIT_CODE))
    assert s.process.wait(timeout=5) == SHUTDOWN_EXIT_CODE
    assert not alive(second) and second in s.stopped()
    assert len(s.started()) == 2  # nothing was started again


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """What `facestream worker` hands to the supervisor or to the in-process worker."""
    seen: list[tuple[str, object]] = []

    def run_workers(count: int, argv: list[str]) -> int:
        seen.append(("sup", (count, argv)))
        return 0

    def run_worker(stages: list[str], argv: list[str]) -> int:
        seen.append(("run", stages))
        return 0

    monkeypatch.setattr("streams.control.supervisor.run_workers", run_workers)
    monkeypatch.setattr("streams.worker.main.run_worker", run_worker)
    monkeypatch.delenv(SUPERVISED_ENV, raising=False)
    return seen


def worker(*argv: str) -> int:
    """`facestream worker ARGV` as the command dispatches it."""
    args: argparse.Namespace = cli.parser().parse_args(["worker", *argv])
    code: int = args.run(args)
    return code


def test_worker_command_supervises_only_several_processes_and_never_twice(
    calls: list[tuple[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker("--workers", "3", "--stages", "detect,match")
    worker("--workers", "1", "--stages", "detect")
    monkeypatch.setenv(SUPERVISED_ENV, "1")
    worker("--workers", "3", "--stages", "store")
    assert calls == [
        ("sup", (3, ["--stages", "detect,match"])),
        ("run", ["detect"]),
        ("run", ["store"]),
    ]


def test_worker_count_defaults_to_the_setting(
    calls: list[tuple[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACESTREAM_WORKER__WORKER_COUNT", "4")
    get_settings.cache_clear()
    try:
        worker()
    finally:
        get_settings.cache_clear()
    assert calls == [("sup", (4, []))]
    with pytest.raises(SystemExit):
        worker("--workers", "0")
