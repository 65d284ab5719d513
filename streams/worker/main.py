"""The worker process: the Faust app with the stages asked for, under the crash-handling worker."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streams.control.process import finish, follower, live_settings
from streams.worker.agents import Pipeline
from streams.worker.app import create_app
from streams.worker.crash import Worker
from streams.worker.deadletters import CRASH_EXIT_CODE

log = logging.getLogger(__name__)


def run_worker(stages: Sequence[str], argv: Sequence[str]) -> int:
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
