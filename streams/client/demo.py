"""Enroll, send, wait and print: what `facestream enroll`, `send` and `demo` do."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.kafka import topics
from streams.kafka.images import ImageProducer
from streams.kafka.reader import TopicReader
from streams.kafka.topics import ensure_topics
from streams.settings import Settings

Record = dict[str, Any]
DEMO_ACCOUNT = "6d071cca-fda5-4a03-84d5-5bea65904480"
DEMO_LIST = str(uuid.uuid5(uuid.NAMESPACE_URL, "facestream:demo:known-people"))


def _images(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found.extend(read_folder(path, IMAGE_EXTENSIONS) if path.is_dir() else [path])
    return found


async def _send_and_wait(
    settings: Settings, jobs: list[tuple[Path, dict[str, Any]]], timeout: float, label: str
) -> dict[str, tuple[Path, Record | None]]:
    """Sends each (file, options) job; returns event id -> (file, event or None on timeout)."""
    await ensure_topics(settings.kafka)
    async with TopicReader(settings, topics.EVENTS) as events, ImageProducer(settings) as producer:
        sent: dict[str, Path] = {}
        for path, options in tqdm(jobs, desc=f"{label}: sending", unit="img"):
            sent[await producer.send(path.read_bytes(), source=path.name, **options)] = path
        await producer.flush()
        found: dict[str, Record] = {}
        deadline = time.monotonic() + timeout
        with tqdm(total=len(sent), desc=f"{label}: events", unit="evt") as bar:
            while len(found) < len(sent) and time.monotonic() < deadline:
                new = await events.collect(set(sent) - set(found), timeout=0.5)
                found.update(new)
                bar.update(len(new))
    return {event_id: (path, found.get(event_id)) for event_id, path in sent.items()}


def describe(event: Record | None) -> str:
    if event is None:
        return "no event before the timeout"
    if event["status"] == "error":
        return f"error {event['error_code']}: {event['error_message']}"
    parts = []
    for face in event["faces"]:
        g, live = face["geometry"], face["liveness"]
        text = (
            f"face {g['width']:.0f}x{g['height']:.0f} live={live['probability']:.2f} "
            f"quality={live['quality']:.2f}"
        )
        if face["enrolled_face_id"]:
            text += f" enrolled as {face['enrolled_face_id'][:8]}"
        elif face["matches"]:
            best = face["matches"][0]
            text += f" -> {best['user_data'] or best['face_id']} ({best['similarity']:.3f})"
        else:
            text += " -> no match"
        parts.append(text)
    return "; ".join(parts) or "no faces"


async def enroll_folder(
    settings: Settings, folder: Path, *, account_id: str, list_id: str, timeout: float
) -> int:
    """FOLDER/<person>/<images>: the first image of each person enrolls that person."""
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    jobs = []
    for person in people:
        images = read_folder(person, IMAGE_EXTENSIONS)
        if images:
            enroll = {"list_id": list_id, "user_data": person.name}
            jobs.append((images[0], {"account_id": account_id, "enroll": enroll}))
    results = await _send_and_wait(settings, jobs, timeout, "enroll")
    failures = 0
    for path, event in results.values():
        print(f"{path.parent.name:24s} {describe(event)}")
        failures += event is None or event["status"] != "ok"
    return 1 if failures else 0


async def send_folder(
    settings: Settings,
    paths: list[Path],
    *,
    account_id: str,
    list_ids: list[str],
    wait: bool,
    timeout: float,
) -> int:
    options = {"account_id": account_id, "list_ids": list_ids}
    files = _images(paths)
    if not wait:
        async with ImageProducer(settings) as producer:
            for path in tqdm(files, desc="sending", unit="img"):
                print(await producer.send(path.read_bytes(), source=path.name, **options), path)
        return 0
    results = await _send_and_wait(settings, [(p, options) for p in files], timeout, "send")
    for path, event in results.values():
        print(f"{path.name:28s} {describe(event)}")
    return 0 if all(event is not None for _, event in results.values()) else 1


async def run_demo(settings: Settings, testdata: Path, *, timeout: float) -> int:
    """dlib's johns: first image of each enrolls them; all others plus dlib's group photos go
    through the pipeline; prints each event and how many johns were recognised."""
    johns = testdata / "johns"
    print(f"Enrolling {len(list(johns.iterdir()))} known people into list {DEMO_LIST}")
    if await enroll_folder(
        settings, johns, account_id=DEMO_ACCOUNT, list_id=DEMO_LIST, timeout=timeout
    ):
        print("enrollment failed; see the worker log")
        return 1
    probes = [
        p for person in sorted(johns.iterdir()) for p in read_folder(person, IMAGE_EXTENSIONS)[1:]
    ]
    others = read_folder(testdata / "faces", IMAGE_EXTENSIONS)
    options = {"account_id": DEMO_ACCOUNT, "list_ids": [DEMO_LIST]}
    jobs = [(p, options) for p in probes + others]
    print(f"\nSending {len(jobs)} photos through Kafka")
    results = await _send_and_wait(settings, jobs, timeout, "pipeline")
    right = 0
    for path, event in results.values():
        label = f"{path.parent.name}/{path.name}"
        print(f"{label:44s} {describe(event)}")
        if path in probes and event and event["faces"] and event["faces"][0]["matches"]:
            right += event["faces"][0]["matches"][0]["user_data"] == path.parent.name
    missing = sum(event is None for _, event in results.values())
    errors = sum(1 for _, e in results.values() if e is not None and e["status"] == "error")
    faces = sum(len(e["faces"]) for _, e in results.values() if e is not None)
    print(
        f"\n{len(results)} images, {faces} faces, {errors} error events, {missing} missing; "
        f"{right}/{len(probes)} known-person photos matched to the right person"
    )
    return 1 if missing else 0
