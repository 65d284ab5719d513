"""`reextract`: every stored sample again, with another descriptor version."""

from __future__ import annotations

import argparse
import asyncio

from streams.cli.common import number_in
from streams.settings import get_settings

MAX_BATCH = 4096


def _lanes(text: str) -> int:
    from streams.worker.replay import MAX_LANES  # here: the module is heavy for `--help`

    return number_in(1, MAX_LANES, int)(text)


def _reextract(args: argparse.Namespace) -> int:
    import signal

    from tqdm import tqdm

    from streams.kafka import topics
    from streams.kafka.task_states import TaskRecorder, run_recorded
    from streams.worker.replay import Progress, ReextractionTask

    task_id = args.task_id or f"to-v{args.version}"
    settings = get_settings()
    bar = tqdm(desc=f"re-extracting to version {args.version}", unit="sample")

    def show(progress: Progress) -> None:
        bar.total = max(progress.total, progress.processed + progress.errors)
        bar.n = progress.processed + progress.errors
        bar.set_postfix(errors=progress.errors, status=progress.status)
        bar.refresh()

    async def run() -> Progress:
        """The task, its state on the tasks topic as the API writes its own (so that every API
        process shows it too)."""
        await topics.ensure_topics(settings.kafka)  # before the first state is written
        producer = topics.producer(settings.kafka)
        await producer.start()
        try:
            task = ReextractionTask(
                settings,
                args.version,
                task_id,
                batch_size=args.batch_size,
                limit=args.limit,
                lanes=args.lanes,
                producer=producer,
            )
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, task.stop)  # stops after the batch, committed
            loop.add_signal_handler(signal.SIGTERM, task.stop)
            recorder = TaskRecorder(settings, producer, task_id, args.version)
            await run_recorded(recorder, task.run(show), task.progress.as_dict)
            return task.progress
        finally:
            await producer.stop()

    progress = asyncio.run(run())
    bar.close()
    print(
        f"task {task_id}: {progress.status}; {progress.processed} samples re-extracted, "
        f"{progress.errors} errors, {progress.not_reextractable} not re-extractable (faces "
        "without a sample, deleted samples); log: topic "
        f"{settings.kafka.topic_prefix}.reextractions, key {task_id}"
    )
    if progress.status == "stopped":
        print(f"resume with: facestream reextract --version {args.version} --task-id {task_id}")
    return 0 if progress.status == "done" and progress.errors == 0 else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`reextract`."""
    reextract = sub.add_parser(
        "reextract",
        help="re-extract every stored sample with a descriptor version (replays the samples "
        "topic; stop with Ctrl-C and run again to resume)",
    )
    reextract.add_argument("--version", type=int, required=True, help="descriptor version")
    reextract.add_argument(
        "--task-id", help="names the task; the same id resumes it (default: to-v<VERSION>)"
    )
    reextract.add_argument(
        "--batch-size",
        type=number_in(1, MAX_BATCH, int),
        default=128,
        help="samples per batch (one commit each)",
    )
    reextract.add_argument(
        "--limit",
        type=number_in(1, float("inf"), int),
        help="stop after this many samples (run again to go on)",
    )
    reextract.add_argument(
        "--lanes",
        type=_lanes,
        help="extractions side by side, each on one thread (default: one per core)",
    )
    reextract.set_defaults(run=_reextract)
