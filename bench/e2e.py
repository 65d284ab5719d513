"""End-to-end throughput against the bare processors, measured in one run.

Sends N real face images through Kafka -> Faust worker (all stages) -> ClickHouse and times
from the first send until the last event row is in ClickHouse; runs the bare processors
(decode, detect, liveness, align, extract, match) over the same images in the same process
run. Then sends images at a fixed rate, half the end-to-end rate measured, and times each from
its send until its event row is in ClickHouse (polled every POLL_S, the figures' resolution):
p50/p99 beside the bare processors' time per image, and beside the bare processors taking the
same images at the same rate one after another (their queue included). Prints a JSON object as
its last line. Needs the stack: bash infra/stack.sh start.

    .venv/bin/python bench/e2e.py --images 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from processors import align, quality
from processors.errors import ProcessingError
from processors.image import decode_image
from schemas.records import Face
from sinks.clickhouse import DriverClient
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import REPO, WorkerProcess, stack_env
from streams.kafka.gallery import GalleryIndex, SearchRequest
from streams.kafka.images import ImageProducer
from streams.kafka.topics import delete_deployment_topics, ensure_topics
from streams.models.modelset import ModelSet
from streams.settings import Settings
from streams.worker.stages import select_faces

ACCOUNT = "6d071cca-fda5-4a03-84d5-5bea65904480"
LIST = "bench"
POLL_S = 0.02


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare(
    models: ModelSet, settings: Settings, images: list[bytes], gallery: GalleryIndex
) -> list[float]:
    """Seconds per image through the processors alone, the same steps the stages take."""
    limits, rules = settings.image, settings.detection
    extractor = models.extractor(settings.descriptor.default_face_descriptor_version)
    times = []
    for data in images:
        started = time.perf_counter()
        times.append(0.0)  # an image without faces ends early
        image = decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        try:  # the same face rules as the pipeline, so both do the same work
            found = [d for _, d in select_faces(models.detector.detect(image), rules, False)]
        except ProcessingError:
            times[-1] = time.perf_counter() - started
            continue
        qualities = [quality.estimate(image, d).overall for d in found]
        models.liveness.estimate([models.liveness.crops(image, d) for d in found], qualities)
        vectors = extractor.extract([align.warp(image, d.landmarks) for d in found])
        gallery.search_batch(  # as the match stage does: the faces of an image together
            [
                SearchRequest(
                    ACCOUNT,
                    extractor.version,
                    vector,
                    list_ids=(LIST,),
                    limit=settings.match.limit,
                    threshold=settings.match.threshold(1),
                )
                for vector in vectors
            ]
        )
        times[-1] = time.perf_counter() - started
    return times


def bare_paced(
    models: ModelSet, settings: Settings, images: list[bytes], gallery: GalleryIndex, rate: float
) -> list[float]:
    """Seconds from each image's due time (image i at i / rate) to its finish through the bare
    processors taking the images one at a time: the queueing the same arrivals cause without any
    pipeline, since a run of many-face images outpaces the model whatever carries them."""
    start = time.perf_counter()
    waits = []
    for i, data in enumerate(images):
        due = start + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        bare(models, settings, [data], gallery)
        waits.append(time.perf_counter() - due)
    return waits


async def send_all(settings: Settings, images: list[bytes], enroll: bool = False) -> list[str]:
    async with ImageProducer(settings) as producer:
        ids = []
        for i, data in enumerate(images):
            options = (
                {"enroll": {"list_id": LIST, "user_data": f"p{i}"}}
                if enroll
                else {"list_ids": [LIST]}
            )
            ids.append(await producer.send(data, account_id=ACCOUNT, **options))
        await producer.flush()
    return ids


def wait_stored(client: DriverClient, database: str, ids: list[str], timeout: float) -> None:
    quoted = ", ".join(f"'{i}'" for i in ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = client.query(
            f"SELECT uniqExact(event_id) AS n FROM {database}.events WHERE event_id IN ({quoted})"
        )
        if int(rows[0]["n"]) >= len(ids):
            return
        time.sleep(0.25)
    raise TimeoutError(f"not all {len(ids)} events stored within {timeout}s")


async def send_paced(
    settings: Settings, images: list[bytes], rate: float, sent: dict[str, float]
) -> None:
    """Sends `images` at `rate` per second, noting in `sent` when each event id was sent."""
    async with ImageProducer(settings) as producer:
        start = time.perf_counter()
        for i, data in enumerate(images):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            record = producer.image_record(data, account_id=ACCOUNT, list_ids=[LIST])
            sent[record["context"]["event_id"]] = time.perf_counter()
            await producer.send_record(record)
        await producer.flush()


async def latencies(
    settings: Settings, client: DriverClient, images: list[bytes], rate: float, timeout: float
) -> tuple[list[float], list[float]]:
    """Per image sent at `rate`: seconds from its send until its event row was first seen in
    ClickHouse, and the row's own latency_ms (created_at to the pipeline's finish)."""
    sent: dict[str, float] = {}
    stored: dict[str, tuple[float, float]] = {}
    sender = asyncio.create_task(send_paced(settings, images, rate, sent))
    deadline = time.perf_counter() + timeout
    sql = (
        f"SELECT event_id, latency_ms FROM {settings.storage.database}.events "
        "WHERE has(splitByChar(',', %(ids)s), event_id)"
    )
    while not sender.done() or len(stored) < len(sent):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(sent) - len(stored)} events not stored within {timeout}s")
        pending = ",".join(i for i in list(sent) if i not in stored)
        if pending:
            polled = time.perf_counter()  # a row seen was there when the query started
            for row in await asyncio.to_thread(client.query, sql, {"ids": pending}):
                stored.setdefault(row["event_id"], (polled, row["latency_ms"] / 1000))
        await asyncio.sleep(POLL_S)
    await sender
    return [stored[i][0] - t for i, t in sent.items()], [stored[i][1] for i in sent]


def percentile_ms(values: list[float], q: int) -> float:
    return round(1000 * statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def enroll_bare(models: ModelSet, known: list[bytes]) -> GalleryIndex:
    gallery = GalleryIndex()
    extractor = models.extractor(1)
    for i, data in enumerate(known):
        image = decode_image(data, max_bytes=10**8, max_pixels=10**8)
        detection = max(models.detector.detect(image), key=lambda d: d.width * d.height)
        vector = extractor.extract([align.warp(image, detection.landmarks)])[0]
        face: Face = {
            "face_id": f"p{i}",
            "account_id": ACCOUNT,
            "list_ids": [LIST],
            "user_data": None,
            "event_id": None,
            "sample_id": None,
            "created_at": datetime.now(UTC),
            "descriptors": [{"version": 1, "vector": vector.astype("<f4").tobytes()}],
            "attributes": None,
            "avatar_sample_id": None,
        }
        gallery.apply(f"p{i}", face)
    return gallery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="images per round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating end-to-end and bare rounds; medians are reported",
    )
    parser.add_argument("--testdata", type=Path, default=REPO / ".facestream/testdata")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    os.environ.update(
        stack_env()
        | {
            "FACESTREAM_KAFKA__TOPIC_PREFIX": f"bench{run}",
            "FACESTREAM_STORAGE__DATABASE": f"bench{run}",
            "FACESTREAM_WORKER__WEB_PORT": str(21000 + int(run[:4], 16) % 9000),
            "FACESTREAM_LOGGING__LEVEL": "WARNING",
        }
    )
    settings = Settings()
    files = read_folder(args.testdata / "johns", IMAGE_EXTENSIONS) + read_folder(
        args.testdata / "faces", IMAGE_EXTENSIONS
    )
    images = [files[i % len(files)].read_bytes() for i in range(args.images)]
    people = sorted((args.testdata / "johns").iterdir())
    known = [read_folder(p, IMAGE_EXTENSIONS)[0].read_bytes() for p in people]

    asyncio.run(ensure_topics(settings.kafka))
    client = DriverClient(settings.storage.clickhouse_url or "clickhouse://127.0.0.1:19000")
    # Upgrades the schema first, as `facestream db upgrade` would.
    worker = WorkerProcess({}, REPO / ".facestream" / f"bench-worker-{run}.log")
    try:
        # Warms the worker (models load on first use) with the enrollments.
        warm = asyncio.run(send_all(settings, known, enroll=True))
        wait_stored(client, settings.storage.database, warm, timeout=300)
        models = ModelSet(settings.worker.models_dir)
        gallery = enroll_bare(models, known)
        bare(models, settings, images[:10], gallery)  # warm the bare models too
        e2e_rates, bare_rates, idle_share, bare_times = [], [], [], []
        for _ in range(args.rounds):
            # Rounds alternate so a noisy spell of the machine hits both sides alike.
            started = time.perf_counter()
            ids = asyncio.run(send_all(settings, images))
            wait_stored(client, settings.storage.database, ids, timeout=600)
            e2e_rates.append(len(images) / (time.perf_counter() - started))
            # The idle worker stays up during the bare round: its CPU use is reported.
            cpu_before, wall_before = process_cpu_s(worker.process.pid), time.perf_counter()
            bare_times += bare(models, settings, images, gallery)
            bare_rates.append(len(images) / sum(bare_times[-len(images) :]))
            idle_share.append(
                (process_cpu_s(worker.process.pid) - cpu_before)
                / (time.perf_counter() - wall_before)
                / (os.cpu_count() or 1)
            )
        e2e, bare_rate = statistics.median(e2e_rates), statistics.median(bare_rates)
        to_stored, to_finished = asyncio.run(
            latencies(settings, client, images, e2e / 2, timeout=600)
        )
        paced = bare_paced(models, settings, images, gallery, e2e / 2)
    finally:
        worker.stop()
        asyncio.run(delete_deployment_topics(settings.kafka))
        client.execute(f"DROP DATABASE IF EXISTS {settings.storage.database}")
    bare_ms = 1000 / bare_rate
    print(
        json.dumps(
            {
                "images_per_round": len(images),
                "rounds": args.rounds,
                "e2e_images_per_s": round(e2e, 2),
                "bare_images_per_s": round(bare_rate, 2),
                "ratio": round(e2e / bare_rate, 3),
                "ratios": [round(e / b, 3) for e, b in zip(e2e_rates, bare_rates, strict=True)],
                "idle_worker_cpu_share_in_bare_rounds": round(max(idle_share), 4),
                "latency_rate_per_s": round(e2e / 2, 2),
                "latency_images": len(to_stored),
                "latency_p50_ms": percentile_ms(to_stored, 50),
                "latency_p99_ms": percentile_ms(to_stored, 99),
                "latency_poll_ms": POLL_S * 1000,
                "finished_p50_ms": percentile_ms(to_finished, 50),
                "finished_p99_ms": percentile_ms(to_finished, 99),
                "bare_ms_per_image": round(bare_ms, 1),
                "bare_p50_ms": percentile_ms(bare_times, 50),
                "bare_p99_ms": percentile_ms(bare_times, 99),
                "latency_p99_over_bare": round(percentile_ms(to_stored, 99) / bare_ms, 2),
                # Like for like: the slowest images' own model time sets a floor under p99.
                "latency_p99_over_bare_p99": round(
                    percentile_ms(to_stored, 99) / percentile_ms(bare_times, 99), 2
                ),
                # The same images at the same rate through the bare processors, queue included.
                "bare_paced_p50_ms": percentile_ms(paced, 50),
                "bare_paced_p99_ms": percentile_ms(paced, 99),
                "latency_p99_over_bare_paced_p99": round(
                    percentile_ms(to_stored, 99) / percentile_ms(paced, 99), 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
