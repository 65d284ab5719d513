"""Images produced to the real broker end as events in the real ClickHouse, with points in the
real InfluxDB; bad messages end as dead letters; the worker keeps running."""

from __future__ import annotations

import asyncio
import io
import socket
import time
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import schemas
from sinks.clickhouse import DriverClient
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import WorkerProcess
from streams.kafka import topics
from streams.kafka.images import ImageProducer
from streams.kafka.reader import TopicReader
from streams.settings import KafkaSettings, Settings
from tests.integration.conftest import influx_query

pytestmark = pytest.mark.integration

Record = dict[str, Any]


def people(testdata_dir: Path) -> dict[str, list[Path]]:
    return {
        p.name: read_folder(p, IMAGE_EXTENSIONS) for p in sorted((testdata_dir / "johns").iterdir())
    }


async def send_and_collect(
    settings: Settings, sends: list[dict[str, Any]], timeout: float = 120.0
) -> list[Record]:
    async with TopicReader(settings, topics.EVENTS) as events, ImageProducer(settings) as producer:
        ids = [await producer.send(**send) for send in sends]
        await producer.flush()
        found = await events.collect(set(ids), timeout)
    assert set(found) == set(ids), f"{len(ids) - len(found)} events missing"
    return [found[i] for i in ids]


def wait_rows(
    client: DriverClient, sql: str, count: int, timeout: float = 60.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = client.query(sql)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def event_rows(
    client: DriverClient, database: str, event_ids: Collection[str], columns: str
) -> list[dict[str, Any]]:
    """`columns` of these events' rows under FINAL, once there is one for each or time is up."""
    listed = ", ".join(f"'{i}'" for i in event_ids)
    return wait_rows(
        client,
        f"SELECT {columns} FROM {database}.events FINAL WHERE event_id IN ({listed})",
        len(event_ids),
    )


async def test_images_end_as_event_rows_with_matches_and_influx_points(
    worker: WorkerProcess,
    settings: Settings,
    clickhouse: DriverClient,
    testdata_dir: Path,
    stack_env: dict[str, str],
) -> None:
    account, list_id = str(uuid.uuid4()), str(uuid.uuid4())
    known = people(testdata_dir)
    enrolled = await send_and_collect(
        settings,
        [
            {
                "data": files[0].read_bytes(),
                "account_id": account,
                "enroll": {"list_id": list_id, "user_data": name},
            }
            for name, files in known.items()
        ],
    )
    face_ids = {
        e["faces"][0]["enrolled_face_id"]: name for e, name in zip(enrolled, known, strict=True)
    }
    assert None not in face_ids

    probes = [(name, files[5]) for name, files in known.items()]
    events = await send_and_collect(
        settings,
        [
            {
                "data": path.read_bytes(),
                "account_id": account,
                "list_ids": [list_id],
                "source": path.name,
            }
            for _, path in probes
        ],
    )
    db = settings.storage.database
    rows = event_rows(
        clickhouse,
        db,
        [e["context"]["event_id"] for e in events],
        "event_id, status, best_match_face_id, face_count",
    )
    by_id = {row["event_id"]: row for row in rows}
    assert len(by_id) == len(events)
    for (name, _), event in zip(probes, events, strict=True):
        row = by_id[event["context"]["event_id"]]
        assert row["status"] == "ok" and row["face_count"] == 1
        assert face_ids[row["best_match_face_id"][0]] == name

    faces = wait_rows(
        clickhouse,
        f"SELECT face_id FROM {db}.faces FINAL WHERE account_id = '{account}'",
        len(known),
    )
    assert {f["face_id"] for f in faces} == set(face_ids)
    descriptors = clickhouse.query(
        f"SELECT count() AS n FROM {db}.descriptors FINAL WHERE account_id = '{account}' "
        f"AND length(descriptor) = 128"
    )
    # One per known face, one per face of each event (enrollments are events too).
    assert descriptors[0]["n"] == len(known) + len(enrolled) + len(events)

    database = stack_env["FACESTREAM_INFLUX_MONITORING__DATABASE"]
    deadline = time.monotonic() + 30
    while True:
        result = influx_query(
            stack_env, "SELECT sum(processed) FROM facestream_stage WHERE stage = 'match'", database
        )
        series = result["results"][0].get("series")
        if (
            series and series[0]["values"][0][1] >= len(known) + len(events)
        ) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert series, f"no monitoring points in InfluxDB: {result}"
    assert series[0]["values"][0][1] >= len(known) + len(events)


def jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=quality)
    return out.getvalue()


async def test_bad_messages_become_dead_letters_and_nothing_else_is_lost(
    worker: WorkerProcess, settings: Settings, testdata_dir: Path
) -> None:
    account = str(uuid.uuid4())
    good = people(testdata_dir)["John_Simm"][2].read_bytes()
    async with (
        TopicReader(settings, topics.EVENTS) as events,
        TopicReader(settings, topics.DEAD_LETTERS) as letters,
        ImageProducer(settings) as producer,
    ):
        first = await producer.send(good, account_id=account)
        await producer.send_raw(b"\x00garbage that is not avro", key="garbage")
        await producer.send_raw(bytes((schemas.MAGIC, 1)) + b"\xff\xff\xff", key="cut-avro")
        await producer.send_raw(
            schemas.codec("Sample").encode(
                {
                    "sample_id": "s",
                    "account_id": account,
                    "event_id": None,
                    "face_index": 0,
                    "created_at": 0,
                    "image": b"x",
                }
            ),
            key="wrong-schema",
        )
        truncated = await producer.send(good[: len(good) // 3], account_id=account)
        no_face = await producer.send(
            jpeg(np.full((200, 300, 3), 90, np.uint8)), account_id=account
        )
        last = await producer.send(good, account_id=account)
        await producer.flush()
        found = await events.collect({first, truncated, no_face, last}, timeout=120)
        dead: list[Record] = []
        deadline = time.monotonic() + 30
        while len(dead) < 5 and time.monotonic() < deadline:
            dead += [letter for _, letter in await letters.read() if letter is not None]
    assert found[first]["status"] == found[last]["status"] == "ok"
    assert found[truncated]["error_code"] == "truncated_image"
    assert found[no_face]["error_code"] == "no_face"
    by_key = {(d["event_id"] or d["error_code"]): d for d in dead}
    assert by_key[truncated]["stage"] == "detect" and by_key[truncated]["payload"]
    assert by_key[no_face]["error_code"] == "no_face"
    codes = sorted(d["error_code"] for d in dead if d["event_id"] is None)
    assert codes == ["bad_wire_format", "schema_mismatch", "schema_mismatch"], dead
    assert all(d["error_message"] and d["topic"].endswith(".images") for d in dead)
    assert worker.process.poll() is None


async def test_an_image_over_the_message_limit_travels_by_claim_check(
    worker: WorkerProcess, settings: Settings, testdata_dir: Path
) -> None:
    photo = Image.open(testdata_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg").convert("RGB")
    out = io.BytesIO()
    # Twice the size, lossless: a few megabytes, over the 1 MiB limit set below.
    photo.resize((photo.width * 2, photo.height * 2)).save(out, format="PNG")
    data = out.getvalue()
    small = settings.model_copy(
        update={
            "kafka": KafkaSettings(
                **(settings.kafka.model_dump() | {"max_message_bytes": 1024 * 1024})
            )
        }
    )
    assert len(data) > small.kafka.max_message_bytes - 64 * 1024, len(data)
    async with ImageProducer(small) as producer:
        record = producer.image_record(data, account_id=str(uuid.uuid4()))
    assert record["data"] is None and str(record["data_ref"]).startswith("file://")
    (event,) = await send_and_collect(small, [{"data": data, "account_id": str(uuid.uuid4())}])
    assert event["status"] == "ok" and len(event["faces"]) == 1


async def test_two_workers_share_the_partitions(
    worker: WorkerProcess,
    settings: Settings,
    stack_env: dict[str, str],
    testdata_dir: Path,
    tmp_path: Path,
) -> None:
    """A second worker running only detection joins the group and takes part of its work."""
    second = WorkerProcess(
        stack_env, tmp_path / "second.log", "--stages", "detect", ready="Worker]: Ready"
    )
    try:
        second.wait_ready()
        images = [p.read_bytes() for files in people(testdata_dir).values() for p in files[:6]]
        # Sent until both workers have detected something (a rebalance may delay the first).
        database = stack_env["FACESTREAM_INFLUX_MONITORING__DATABASE"]
        deadline = time.monotonic() + 90
        while True:
            events = await send_and_collect(
                settings, [{"data": data, "account_id": str(uuid.uuid4())} for data in images]
            )
            assert all(e["status"] == "ok" for e in events)
            await asyncio.sleep(1.5)  # a monitoring flush
            result = influx_query(
                stack_env,
                "SELECT sum(processed) FROM facestream_stage "
                "WHERE stage = 'detect' GROUP BY worker",
                database,
            )
            ours = {f"{socket.gethostname()}-{p.process.pid}" for p in (worker, second)}
            series = result["results"][0].get("series", [])
            workers = [s for s in series if s["tags"]["worker"] in ours]
            if len(workers) >= 2 or time.monotonic() > deadline:
                break
        assert len(workers) == 2, series
        assert all(w["values"][0][1] > 0 for w in workers)
        assert second.process.poll() is None
    finally:
        second.stop()


async def test_the_gallery_samples_lists_and_config_topics_are_compacted(
    worker: WorkerProcess, settings: Settings
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap_servers(settings.kafka))
    await admin.start()
    try:
        policies = {}
        for spec in topics.ALL:
            name = topics.topic_name(settings.kafka, spec)
            (response,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name)]
            )
            entries = response.resources[0][4]
            policies[spec.suffix] = next(e[1] for e in entries if e[0] == "cleanup.policy")
    finally:
        await admin.close()
    compacted = {"faces", "samples", "lists", "config", "tasks"}
    assert {s for s, p in policies.items() if p == "compact"} == compacted, policies
