"""Samples re-extracted per second by the re-extraction task (replaying the samples topic
through Kafka, writing results back) beside the bare extractor over the same samples, in one
run, alternating rounds. Prints a JSON object last. Needs the stack: bash infra/stack.sh start.

The bare extractor is measured two ways, decoding included: laid out as the task lays it out
(a single-threaded session run by one thread per core, LANE_CHUNK samples a call: the fastest
layout found, so `ratio` is the task's own overhead), and as a worker opens it (one session
using every core, BATCH samples a call: `ratio_vs_worker_session`).

    .venv/bin/python bench/reextract.py --samples 1000 --version 2 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

import schemas
from processors import align
from processors.image import decode_image, encode_jpeg
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import stack_env
from streams.kafka import topics
from streams.models.modelset import ModelSet
from streams.settings import Settings
from streams.worker.replay import LANE_CHUNK, ReextractionTask
from streams.worker.stages import decode_sample

REPO = Path(__file__).resolve().parents[1]
BATCH = 128


def make_samples(models: ModelSet, testdata: Path, count: int) -> list[bytes]:
    """JPEG samples of every face of the test photos, repeated up to `count`."""
    samples = []
    for path in read_folder(testdata / "johns", IMAGE_EXTENSIONS) + read_folder(
        testdata / "faces", IMAGE_EXTENSIONS
    ):
        image = decode_image(path.read_bytes(), max_bytes=10**8, max_pixels=10**8)
        samples += [
            encode_jpeg(align.warp(image, d.landmarks)) for d in models.detector.detect(image)
        ]
    return [samples[i % len(samples)] for i in range(count)]


async def publish(settings: Settings, samples: list[bytes]) -> None:
    await topics.ensure_topics(settings.kafka)
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers(settings.kafka),
        max_request_size=settings.kafka.max_message_bytes,
        linger_ms=5,
    )
    await producer.start()
    codec = schemas.codec("Sample")
    for index, image in enumerate(samples):
        sample_id = str(uuid.uuid4())
        record = {
            "sample_id": sample_id,
            "account_id": "bench",
            "event_id": str(uuid.uuid4()),
            "face_index": 0,
            "created_at": datetime.now(UTC),
            "image": image,
        }
        await producer.send(
            topics.topic_name(settings.kafka, topics.SAMPLES),
            codec.encode(record),
            key=sample_id.encode(),
        )
        if index % 500 == 0:
            await producer.flush()
    await producer.flush()
    await producer.stop()


def bare(models: ModelSet, version: int, samples: list[bytes], lanes: int) -> float:
    extractor = models.extractor(version, threads=1)
    chunks = [samples[i : i + LANE_CHUNK] for i in range(0, len(samples), LANE_CHUNK)]
    started = time.perf_counter()
    with ThreadPoolExecutor(lanes) as pool:
        list(pool.map(lambda chunk: extractor.extract([decode_sample(s) for s in chunk]), chunks))
    return len(samples) / (time.perf_counter() - started)


def bare_worker_session(models: ModelSet, version: int, samples: list[bytes]) -> float:
    extractor = models.extractor(version)
    started = time.perf_counter()
    for start in range(0, len(samples), BATCH):
        extractor.extract([decode_sample(s) for s in samples[start : start + BATCH]])
    return len(samples) / (time.perf_counter() - started)


def task(
    settings: Settings, models: ModelSet, version: int, lanes: int
) -> tuple[float, float, float]:
    """(samples/s over the whole run, seconds before the first sample, samples/s after it)."""
    task_id = f"bench-{uuid.uuid4().hex[:8]}"
    job = ReextractionTask(settings, version, task_id, models=models, batch_size=BATCH, lanes=lanes)
    marks: list[tuple[float, int]] = []
    started = time.perf_counter()
    progress = asyncio.run(job.run(lambda p: marks.append((time.perf_counter(), p.processed))))
    finished = time.perf_counter()
    assert progress.status == "done" and progress.errors == 0, progress
    # The fixed start (topics, the task's offsets, the faces directory) is reported apart.
    first_at = next(t for t, n in marks if n == 0)
    steady = progress.processed / (finished - first_at)
    return progress.processed / (finished - started), first_at - started, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--version", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--testdata", type=Path, default=REPO / ".facestream/testdata")
    parser.add_argument("--lanes", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    os.environ.update(
        stack_env() | {"FACESTREAM_KAFKA__TOPIC_PREFIX": f"rxbench{uuid.uuid4().hex[:8]}"}
    )
    settings = Settings()
    models = ModelSet(settings.worker.models_dir)
    samples = make_samples(models, args.testdata, args.samples)
    asyncio.run(publish(settings, samples))
    bare(models, args.version, samples[:BATCH], args.lanes)  # warm up
    bare_worker_session(models, args.version, samples[:BATCH])
    task_rates, startups, steady_rates, bare_rates, worker_rates = [], [], [], [], []
    try:
        for _ in range(args.rounds):
            whole, startup, steady = task(settings, models, args.version, args.lanes)
            task_rates.append(whole)
            startups.append(startup)
            steady_rates.append(steady)
            bare_rates.append(bare(models, args.version, samples, args.lanes))
            worker_rates.append(bare_worker_session(models, args.version, samples))
    finally:
        asyncio.run(topics.delete_deployment_topics(settings.kafka))
    task_rate, bare_rate = statistics.median(task_rates), statistics.median(bare_rates)
    steady, worker_rate = statistics.median(steady_rates), statistics.median(worker_rates)
    print(
        json.dumps(
            {
                "samples": len(samples),
                "version": args.version,
                "rounds": args.rounds,
                "lanes": args.lanes,
                "task_samples_per_s": round(task_rate, 1),
                "bare_samples_per_s": round(bare_rate, 1),
                "ratio": round(task_rate / bare_rate, 3),
                "ratios": [round(t / b, 3) for t, b in zip(task_rates, bare_rates, strict=True)],
                "task_startup_s": round(statistics.median(startups), 2),
                "steady_samples_per_s": round(steady, 1),
                "steady_ratio": round(steady / bare_rate, 3),
                "bare_worker_session_samples_per_s": round(worker_rate, 1),
                "ratio_vs_worker_session": round(task_rate / worker_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
