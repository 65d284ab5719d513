"""The worker's app (streams.worker.app) under its worker (streams.worker.crash), in
process: whatever crashes in Faust's own machinery (an app task, a timer, an agent, the
consumer, the producer) ends the process at once with exit code 70 and nothing committed; a
stop signal ends it within its deadline, with the stop's own exit code, even when the graceful
stop hangs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import faust
import pytest

from streams.settings import Settings
from streams.worker import deadletters
from streams.worker.app import create_app
from streams.worker.crash import Worker

CRASH = deadletters.CRASH_EXIT_CODE
STOPPED = 75  # what the stop's own exit code is in these tests: not 0, so that it shows


class Exited(BaseException):
    """Raised where os._exit was called, so that, as there, nothing after it runs."""


class Crash:
    """Stands in for os._exit: records the first exit code (a real exit ends everything there,
    the faked one only the call that asked) and sets `exited`."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.exited = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def exit(self, code: int) -> None:
        if self.code is not None:
            return
        self.code = code
        with contextlib.suppress(RuntimeError):  # a deadline firing after the test's loop
            self.loop.call_soon_threadsafe(self.exited.set)
        if threading.current_thread() is threading.main_thread():  # not the deadline's
            raise Exited(code)

    async def wait(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.exited.wait(), timeout)
        return self.code


Scenario = Callable[[faust.App, Worker, Crash], Awaitable[None]]


@pytest.fixture
def run_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Scenario], None]:
    """Runs a scenario against the worker's app under its worker."""
    monkeypatch.setenv("FACESTREAM_STATE", str(tmp_path))

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            crash = Crash()
            monkeypatch.setattr("os._exit", crash.exit)
            app = create_app(Settings())
            worker = Worker(app, stopped=lambda: STOPPED, stop_timeout_s=0.3, quiet=True)
            for service in (worker, app):  # what their start does first: the service tree
                for dependency in service.on_init_dependencies():
                    service.add_dependency(dependency)
            try:
                await scenario(app, worker, crash)
            finally:  # a watchdog left running would end pytest itself once os._exit is real
                if worker.deadline is not None:
                    worker.deadline.cancel()

        asyncio.run(main())

    return run


async def fails() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("boom")


def test_an_app_task_that_raises_exits_70_naming_it(
    run_app: Callable[[Scenario], None], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(app: faust.App, worker: Worker, crash: Crash) -> None:
        async def follow_something() -> None:
            await fails()

        app.task(follow_something)
        await app.on_started_init_extra_tasks()  # how the app starts its tasks
        assert await crash.wait() == CRASH

    with caplog.at_level(logging.CRITICAL, logger=deadletters.__name__):
        run_app(scenario)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "crashed in follow_something" in line and "exiting (70)" in line


def test_a_timer_that_raises_exits_70(run_app: Callable[[Scenario], None]) -> None:
    async def scenario(app: faust.App, worker: Worker, crash: Crash) -> None:
        app.timer(0.05)(fails)
        await app.on_started_init_extra_tasks()
        assert await crash.wait() == CRASH

    run_app(scenario)


def test_an_agent_that_raises_exits_70_without_a_commit(
    run_app: Callable[[Scenario], None],
) -> None:
    """Faust's default: commit the consumer's offsets, then restart the agent."""

    async def scenario(app: faust.App, worker: Worker, crash: Crash) -> None:
        commits: list[object] = []

        async def commit(*args: object, **kwargs: object) -> bool:
            commits.append(args)
            return True

        app.consumer.commit = commit  # type: ignore[method-assign]

        async def agent(stream: faust.StreamT[bytes]) -> None:
            await fails()

        registered = app.agent(app.channel(), name="facestream.failing")(agent)
        await registered.start()
        assert await crash.wait() == CRASH
        assert commits == []

    run_app(scenario)


def test_an_agent_actor_that_dies_is_not_restarted_but_exits_70(
    run_app: Callable[[Scenario], None],
) -> None:
    """An actor cancelled while its agent runs (Faust: "Restarting on rebalance")."""

    async def scenario(app: faust.App, worker: Worker, crash: Crash) -> None:
        async def agent(stream: faust.StreamT[bytes]) -> None:
            await asyncio.sleep(3600)

        registered = app.agent(app.channel(), name="facestream.waiting")(agent)
        await registered.start()
        await asyncio.sleep(0.05)
        assert isinstance(registered, faust.Agent)
        for actor in registered._actors:  # as Faust's isolated partitions do on a rebalance
            assert actor.actor_task is not None
            actor.actor_task.cancel()
        assert await crash.wait() == CRASH

    run_app(scenario)


@pytest.mark.parametrize("service", ["consumer", "producer"])
def test_a_crash_of_the_consumer_or_producer_exits_70(
    run_app: Callable[[Scenario], None], service: str
) -> None:
    async def scenario(app: faust.App, worker: Worker, crash: Crash) -> None:
        getattr(app, service).add_future(fails())  # how the service runs its background work
        assert await crash.wait() == CRASH

    run_app(scenario)


async def hangs() -> None:
    await asyncio.sleep(3600)


def test_a_stop_signal_ends_a_hung_stop_at_its_deadline_with_the_stop_code(
    run_app: Callable[[Scenario], None],
) -> None:
    async def scenario(app: faust.App, worker: Worker, crash: Crash) -> None:
        worker.stop = hangs  # type: ignore[method-assign]
        started = asyncio.get_running_loop().time()
        worker._schedule_shutdown(signal.SIGTERM)  # where SIGTERM and SIGINT lead
        assert await crash.wait() == STOPPED
        assert 0.3 <= asyncio.get_running_loop().time() - started < 2

    run_app(scenario)


def test_a_crash_while_stopping_ends_the_process_with_the_stop_code(
    run_app: Callable[[Scenario], None],
) -> None:
    async def scenario(app: faust.App, worker: Worker, crash: Crash) -> None:
        worker.stop = hangs  # type: ignore[method-assign]
        worker._schedule_shutdown(signal.SIGINT)
        app.add_future(fails())
        assert await crash.wait(timeout=0.25) == STOPPED  # at once, not at the deadline

    run_app(scenario)
