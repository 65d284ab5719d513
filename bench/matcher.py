"""The matcher against FAISS's exact flat index, measured in one run.

Builds N random unit 128-d faces of one account in the project's gallery (GalleryIndex, as the
worker and the API hold it) and in a FAISS IndexFlatIP, then times, for lists covering 100 %,
10 % and 0.1 % of the faces: one query through GalleryIndex.search_batch (one request, the
list as filter, limit 5) and the faces of a batch of events searched together (--batches),
each against FAISS on the same queries with the same thread count. Also the memory the gallery
adds, the cost of one enrollment into the full gallery, and a cold start: a `--stages match`
worker loading a faces topic of --cold-faces faces until its "gallery loaded" line, beside a
bare aiokafka consumer decoding the same topic. Speed ratios are FAISS's time ÷ the gallery's
(above 1: the gallery is faster). Progress goes to stderr, a JSON object is the last stdout
line. The cold start needs the stack (bash infra/stack.sh start); --cold-faces 0 skips it.

    .venv/bin/python bench/matcher.py --faces 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import re
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from tqdm import tqdm

from schemas.records import Face
from streams.control.launch import REPO, WORKER_READY, WorkerProcess, free_port, stack_env
from streams.kafka import topics
from streams.kafka.gallery import GalleryIndex, SearchRequest, release_freed_memory
from streams.kafka.reader import partitions_of
from streams.settings import Settings, state_dir

ACCOUNT = "0b5e4c1c-6f0a-4d55-9a43-5d8a3f1e7c21"
VERSION = 1
DIM = 128
LIMIT = 5
# label -> (list id, every how many faces one is in it); every face is in the 100 % list.
LISTS = {"100%": ("bench-all", 1), "10%": ("bench-tenth", 10), "0.1%": ("bench-thousandth", 1000)}
FAISS_SIDES = ("faiss_selector", "faiss_list_index")
FAISS_NOTE = (
    "faiss_selector: one IndexFlatIP of all faces searched with "
    "SearchParameters(sel=IDSelectorBitmap(list)); faiss_list_index: an IndexFlatIP holding only "
    "the list's faces (FAISS's fastest exact search of a list, at the cost of a copy per list)"
)

Vectors = npt.NDArray[np.float32]
Search = Callable[[Vectors], list[list[str]]]  # queries -> face ids per query, best first


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def unit_vectors(rng: np.random.Generator, count: int) -> Vectors:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def face_id(i: int) -> str:
    return str(uuid.UUID(int=i))  # shaped like the real ids, cheap to make


def members(label: str, count: int) -> npt.NDArray[np.int64]:
    return np.arange(0, count, LISTS[label][1], dtype=np.int64)


def face_record(i: int, vector: Vectors, created_at: datetime) -> Face:
    return {
        "face_id": face_id(i),
        "account_id": ACCOUNT,
        "list_ids": [list_id for list_id, every in LISTS.values() if i % every == 0],
        "user_data": None,
        "event_id": None,
        "sample_id": None,
        "created_at": created_at,
        "descriptors": [{"version": VERSION, "vector": vector.astype("<f4").tobytes()}],
        "attributes": None,
        "avatar_sample_id": None,
    }


def pin_threads(threads: int) -> dict[str, int]:
    """The same thread count for FAISS (OpenMP) and numpy (its bundled OpenBLAS, which reads
    its environment only when loaded, so it is set through its own call); read back."""
    faiss.omp_set_num_threads(threads)
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    (path,) = libs.glob("libscipy_openblas*.so")
    blas = ctypes.CDLL(str(path))  # already loaded by numpy: the same library
    blas.scipy_openblas_set_num_threads64_(threads)
    return {
        "requested": threads,
        "numpy_openblas": int(blas.scipy_openblas_get_num_threads64_()),
        "faiss_openmp": int(faiss.omp_get_max_threads()),
    }


def rss_bytes() -> int:
    gc.collect()
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def rounded(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}") if value < 1000 else round(value)


# -- the gallery and FAISS -------------------------------------------------------------------


APPLIED_TOGETHER = 10_000  # faces of one apply_many, about what the follower gets in a fetch


def build_gallery(vectors: Vectors) -> tuple[GalleryIndex, float]:
    """The gallery with every face applied as the worker's follower applies decoded Face records
    (a fetch at a time); the seconds it took, the records' making excluded."""
    gallery, created, took = GalleryIndex(), datetime.now(UTC), 0.0
    with tqdm(total=len(vectors), desc="gallery", unit="face", file=sys.stderr) as progress:
        for start in range(0, len(vectors), APPLIED_TOGETHER):
            count = min(APPLIED_TOGETHER, len(vectors) - start)
            faces = range(start, start + count)
            changes = [(face_id(i), face_record(i, vectors[i], created)) for i in faces]
            started = time.perf_counter()
            gallery.apply_many(changes)
            took += time.perf_counter() - started
            progress.update(count)
    release_freed_memory()  # as the follower does once loaded
    return gallery, took


def gallery_search(gallery: GalleryIndex, list_id: str) -> Search:
    def search(queries: Vectors) -> list[list[str]]:
        requests = [
            SearchRequest(ACCOUNT, VERSION, q, list_ids=(list_id,), limit=LIMIT) for q in queries
        ]
        return [[m["face_id"] for m in found] for found in gallery.search_batch(requests)]

    return search


def faiss_search(index: faiss.Index, ids: npt.NDArray[np.int64], **options: Any) -> Search:
    """`ids`: the face number of each of the index's rows."""

    def search(queries: Vectors) -> list[list[str]]:
        _, rows = index.search(queries, LIMIT, **options)
        return [[face_id(int(ids[r])) for r in found if r >= 0] for found in rows]

    return search


def faiss_sides(full: faiss.Index, vectors: Vectors, label: str) -> dict[str, Search]:
    rows = members(label, len(vectors))
    everyone = np.arange(len(vectors), dtype=np.int64)
    bitmap = np.zeros(len(vectors), bool)
    bitmap[rows] = True
    # FAISS's Python wrapper takes the array (its stubs know only the C++ signature) and keeps
    # it alive with the selector, as the parameters keep the selector.
    selector = faiss.IDSelectorBitmap(np.packbits(bitmap, bitorder="little"))  # type: ignore[call-arg, arg-type]
    params = faiss.SearchParameters()
    params.sel = selector
    if len(rows) == len(vectors):
        own = full
    else:
        own = faiss.IndexFlatIP(DIM)
        own.add(vectors[rows])
    return {
        "faiss_selector": faiss_search(full, everyone, params=params),
        "faiss_list_index": faiss_search(own, rows),
    }


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Timings:
    """Seconds per query of each side in each mode, and how often the top-k agreed."""

    per_query: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)
    compared: int = 0
    equal: int = 0

    def run(self, mode: str, sides: dict[str, Search], queries: Vectors, turn: int) -> None:
        """Each side once on the same queries, the order turning each time so that a noisy
        spell of the machine hits every side alike; results checked against FAISS."""
        names = list(sides)
        names = names[turn % len(names) :] + names[: turn % len(names)]
        results = {}
        for name in names:
            cpu, wall = time.process_time(), time.perf_counter()
            results[name] = sides[name](queries)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            self.per_query.setdefault(name, {}).setdefault(mode, []).append(wall / len(queries))
            self.cpu.setdefault(name, []).append(cpu)
            self.wall.setdefault(name, []).append(wall)
        for found, expected in zip(results["facestream"], results["faiss_list_index"], strict=True):
            self.compared += 1
            self.equal += found == expected

    def ms(self, name: str, mode: str) -> float:
        return statistics.median(self.per_query[name][mode]) * 1000

    def cores(self, name: str) -> float:
        return sum(self.cpu[name]) / sum(self.wall[name])


def measure_list(
    gallery: GalleryIndex,
    full: faiss.Index,
    vectors: Vectors,
    label: str,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> dict[str, Any]:
    sides = {"facestream": gallery_search(gallery, LISTS[label][0])} | faiss_sides(
        full, vectors, label
    )
    modes = {"single": 1} | {f"batch{size}": size for size in args.batches}
    lap = Timings()
    for name in sides:  # warm: caches, first-touch of pages
        sides[name](unit_vectors(rng, 2))
    turn = 0
    for _ in tqdm(range(args.rounds), desc=f"list {label}", unit="round", file=sys.stderr):
        for mode, size in modes.items():
            for _ in range(args.queries if size == 1 else 1):
                lap.run(mode, sides, unit_vectors(rng, size), turn)
                turn += 1
    result: dict[str, Any] = {
        "members": len(members(label, len(vectors))),
        "ms_per_query": {
            name: {mode: rounded(lap.ms(name, mode)) for mode in modes} for name in sides
        },
        "cores_used": {name: round(lap.cores(name), 2) for name in sides},
        "topk_equal_faiss": f"{lap.equal}/{lap.compared}",
    }
    ours = lap.ms("facestream", "single")
    for faiss_side in FAISS_SIDES:
        result[f"single_vs_{faiss_side}"] = rounded(lap.ms(faiss_side, "single") / ours)
    for mode in modes:
        if mode == "single":
            continue
        batched = lap.ms("facestream", mode)
        for faiss_side in FAISS_SIDES:
            for kind, theirs in (("single", "single"), ("batched", mode)):
                result[f"{mode}_vs_{faiss_side}_{kind}"] = rounded(
                    lap.ms(faiss_side, theirs) / batched
                )
    return result


def enrollment(
    gallery: GalleryIndex, count: int, rng: np.random.Generator, start: int
) -> dict[str, float]:
    """One new face applied to the full gallery, then versions_lacking(), then the first
    search of a list it joined: none of them should scan the gallery."""
    applies, lacking, searches = [], [], []
    search = gallery_search(gallery, LISTS["10%"][0])
    created = datetime.now(UTC)
    for i, vector in enumerate(unit_vectors(rng, count), start=start):
        record = face_record(i * 1000, vector, created)  # in every list
        started = time.perf_counter()
        gallery.apply(record["face_id"], record)
        applies.append(time.perf_counter() - started)
        started = time.perf_counter()
        gallery.versions_lacking(VERSION)
        lacking.append(time.perf_counter() - started)
        started = time.perf_counter()
        search(vector[None, :])
        searches.append(time.perf_counter() - started)
    return {
        "apply_ms": rounded(statistics.median(applies) * 1000),
        "apply_ms_max": rounded(max(applies) * 1000),
        "versions_lacking_ms": rounded(statistics.median(lacking) * 1000),
        "first_search_10%_list_ms": rounded(statistics.median(searches) * 1000),
    }


def in_process(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    vectors = unit_vectors(rng, args.faces)
    before = rss_bytes()
    gallery, build_s = build_gallery(vectors)
    added = rss_bytes() - before
    raw = args.faces * DIM * 4
    log("building FAISS")
    full = faiss.IndexFlatIP(DIM)
    full.add(vectors)
    lists = {label: measure_list(gallery, full, vectors, label, args, rng) for label in LISTS}
    batched = [f"batch{size}" for size in args.batches]
    return {
        "lists": lists,
        # The targets' view: the least of each ratio over the lists (and batch sizes).
        "worst_single_vs_faiss_selector": min(
            r["single_vs_faiss_selector"] for r in lists.values()
        ),
        "worst_batched_vs_faiss_selector_single": min(
            r[f"{m}_vs_faiss_selector_single"] for r in lists.values() for m in batched
        ),
        "worst_batched_vs_faiss_selector_batched": min(
            r[f"{m}_vs_faiss_selector_batched"] for r in lists.values() for m in batched
        ),
        "memory": {
            "raw_fp32_bytes": raw,
            "rss_added_bytes": added,
            "ratio": round(added / raw, 3),
        },
        "applied_faces_per_s": round(args.faces / build_s),
        "enrollment": enrollment(gallery, args.enrolls, rng, args.faces),
    }


# -- cold start ------------------------------------------------------------------------------


def chunks(rng: np.random.Generator, count: int, size: int = 10_000) -> Iterator[Vectors]:
    for start in range(0, count, size):
        yield unit_vectors(rng, min(size, count - start))


async def produce_faces(settings: Settings, count: int, rng: np.random.Generator) -> float:
    """Faces per second written to the faces topic by one producer, in batches it fills itself
    (a send() per record costs more than encoding it), each key in its usual partition."""
    name = topics.topic_name(settings.kafka, topics.FACES)
    producer = topics.producer(settings.kafka, max_batch_size=1 << 20)
    created = datetime.now(UTC)
    await producer.start()
    try:
        started = time.perf_counter()
        partitions = sorted(await producer.partitions_for(name))
        partition = DefaultPartitioner()
        batches = {p: producer.create_batch() for p in partitions}
        sent = []
        progress = tqdm(total=count, desc="produce", unit="face", mininterval=2, file=sys.stderr)
        for i, vector in enumerate(v for vectors in chunks(rng, count) for v in vectors):
            key = face_id(i).encode()
            value = topics.FACES.encode(face_record(i, vector, created))
            p = partition(key, partitions, partitions)
            if batches[p].append(key=key, value=value, timestamp=None) is None:  # full
                sent.append(await producer.send_batch(batches[p], name, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=key, value=value, timestamp=None)
            progress.update()
        for p, batch in batches.items():
            sent.append(await producer.send_batch(batch, name, partition=p))
        await asyncio.gather(*sent)
        progress.close()
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def bare_read(settings: Settings, count: int) -> float:
    """Seconds for a plain consumer, outside any group, to read and decode the whole topic."""
    name = topics.topic_name(settings.kafka, topics.FACES)
    started = time.perf_counter()
    partitions = await partitions_of(settings, name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=topics.bootstrap_servers(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.kafka.max_message_bytes,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        decoded = 0
        while decoded < count:
            batch = await consumer.getmany(timeout_ms=30_000)
            if not batch:
                raise TimeoutError(f"the bare consumer stalled at {decoded} of {count} faces")
            for records in batch.values():
                for m in records:
                    assert m.key is not None
                    m.key.decode()
                    topics.FACES.decode(m.value)
                    decoded += 1
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def worker_ready(count: int, run: str) -> float:
    """Seconds from starting a `--stages match` worker to its "gallery loaded" line."""
    logfile = REPO / ".facestream" / f"bench-matcher-worker-{run}.log"
    started = time.perf_counter()
    worker = WorkerProcess({}, logfile, "--stages", "match", upgrade=False)
    try:
        worker.wait_ready(timeout=120 + count / 1000)
        ready_s = time.perf_counter() - started
        loaded = re.search(rf"{WORKER_READY}: (\d+) faces", worker.log.read_text())
        if loaded is None or int(loaded.group(1)) != count:
            raise RuntimeError(f"the worker loaded {loaded and loaded.group(1)}, not {count}")
        return ready_s
    finally:
        worker.stop()


def cold_start(count: int, rng: np.random.Generator) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    os.environ.update(
        stack_env()
        | {
            "FACESTREAM_KAFKA__TOPIC_PREFIX": f"benchmatcher{run}",
            "FACESTREAM_WORKER__WEB_PORT": str(free_port()),
            "FACESTREAM_LOGGING__LEVEL": "INFO",
        }
    )
    settings = Settings()
    try:
        asyncio.run(topics.ensure_topics(settings.kafka))
        log("cold start: a worker on an empty faces topic")
        empty_s = worker_ready(0, run)
        produced = asyncio.run(produce_faces(settings, count, rng))
        log("cold start: the bare consumer")
        bare_s = asyncio.run(bare_read(settings, count))
        log("cold start: the worker")
        ready_s = worker_ready(count, run)
    finally:
        asyncio.run(topics.delete_deployment_topics(settings.kafka))
        shutil.rmtree(state_dir() / "faust" / settings.kafka.topic_prefix, ignore_errors=True)
    load_s = ready_s - empty_s  # noisy: only a large topic makes it meaningful
    return {
        "faces": count,
        "produced_faces_per_s": round(produced),
        "bare_consumer_faces_per_s": round(count / bare_s),
        "worker_ready_s": round(ready_s, 2),
        "worker_ready_empty_topic_s": round(empty_s, 2),
        "worker_faces_per_s": round(count / ready_s),
        "ratio": round(bare_s / ready_s, 3),
        # Without the worker's fixed start (imports, Faust, models), timed on an empty topic.
        "ratio_net_of_start": round(bare_s / load_s, 3) if load_s > 0 else None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=1_000_000, help="faces in the gallery")
    parser.add_argument("--threads", type=int, default=1, help="for FAISS and numpy alike")
    parser.add_argument("--queries", type=int, default=10, help="single queries per side and round")
    parser.add_argument(
        "--batches",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[64, 256],
        help="queries searched together, comma-separated (the faces of a batch of events)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="medians over rounds are reported")
    parser.add_argument("--enrolls", type=int, default=20, help="faces enrolled one by one")
    parser.add_argument(
        "--cold-faces",
        type=int,
        default=200_000,
        help="faces on the topic of the cold start (producing N takes time and disk); 0 skips it",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    threads = pin_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "faces": args.faces,
        "dimension": DIM,
        "threads": threads,
        "faiss": f"faiss-cpu {faiss.__version__}; {FAISS_NOTE}",
        "queries_per_round": args.queries,
        "rounds": args.rounds,
    }
    result |= in_process(args, rng)
    gc.collect()
    result["cold_start"] = cold_start(args.cold_faces, rng) if args.cold_faces else None
    result["bench_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
