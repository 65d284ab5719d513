"""Switching the descriptor version: re-extraction by replaying the samples topic, while images
keep streaming; matchers keep the old version until the new one is complete; stop and resume."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

import schemas
from processors.image import encode_jpeg
from sinks.clickhouse import DriverClient
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.client.http import ApiError, Client, Task
from streams.control.launch import ApiProcess, WorkerProcess
from streams.kafka import topics
from streams.kafka.images import ImageProducer
from streams.kafka.reader import TopicReader
from tests.integration.conftest import ADMIN_TOKEN, RELOAD, Deployment, influx_query

pytestmark = pytest.mark.integration
ACCOUNT = str(uuid.uuid4())
LIST = "staff"


def people(testdata_dir: Path) -> dict[str, list[Path]]:
    return {
        p.name: read_folder(p, IMAGE_EXTENSIONS) for p in sorted((testdata_dir / "johns").iterdir())
    }


async def send(
    deployment: Deployment, jobs: list[tuple[bytes, dict[str, Any]]]
) -> list[dict[str, Any]]:
    settings = deployment.settings
    async with TopicReader(settings, topics.EVENTS) as events, ImageProducer(settings) as producer:
        ids = [await producer.send(data, account_id=ACCOUNT, **options) for data, options in jobs]
        await producer.flush()
        found = await events.collect(set(ids), 180)
    assert set(found) == set(ids)
    return [found[i] for i in ids]


async def publish(
    deployment: Deployment, spec: topics.TopicSpec, records: list[tuple[str, bytes | None]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers(deployment.settings.kafka)
    )
    await producer.start()
    name = topics.topic_name(deployment.settings.kafka, spec)
    for key, value in records:
        await producer.send(name, value, key=key.encode())
    await producer.flush()
    await producer.stop()


def probes(known: dict[str, list[Path]], index: int) -> list[tuple[bytes, dict[str, Any]]]:
    return [
        (files[index].read_bytes(), {"list_ids": [LIST], "source": name})
        for name, files in known.items()
    ]


def check_matches(events: list[dict[str, Any]], version: int) -> None:
    for event in events:
        (face,) = event["faces"]
        assert face["matched_version"] == version, event["context"]["source"]
        assert face["matches"][0]["user_data"] == event["context"]["source"]


def rows(clickhouse: DriverClient, deployment: Deployment, sql: str) -> list[dict[str, Any]]:
    return clickhouse.query(sql.format(db=deployment.settings.storage.database))


async def test_switch_version_reextract_while_streaming_stop_and_resume(
    stack_env: dict[str, str], tmp_path: Path, testdata_dir: Path, clickhouse: DriverClient
) -> None:
    deployment = Deployment(stack_env, tmp_path)
    worker = deployment.worker()
    try:
        known = people(testdata_dir)
        enrolled = await send(
            deployment,
            [
                (files[0].read_bytes(), {"enroll": {"list_id": LIST, "user_data": name}})
                for name, files in known.items()
            ],
        )
        assert all(e["status"] == "ok" for e in enrolled)
        check_matches(await send(deployment, probes(known, 1)), version=1)
        # A face with no sample (imported with a descriptor only) and a corrupt sample.
        orphan_id = str(uuid.uuid4())
        orphan = {
            "face_id": orphan_id,
            "account_id": str(uuid.uuid4()),
            "list_ids": [],
            "user_data": None,
            "event_id": None,
            "sample_id": None,
            "created_at": datetime.now(UTC),
            "descriptors": [{"version": 1, "vector": enrolled[0]["faces"][0]["descriptor"]}],
        }
        await publish(deployment, topics.FACES, [(orphan_id, schemas.codec("Face").encode(orphan))])
        await publish(
            deployment,
            topics.SAMPLES,
            [("corrupt-sample", b"\x00 not a sample"), ("deleted-sample", None)],
        )
        ghost_id = str(uuid.uuid4())  # a face whose sample is gone
        ghost = {**orphan, "face_id": ghost_id, "sample_id": "gone-sample"}
        await publish(deployment, topics.FACES, [(ghost_id, schemas.codec("Face").encode(ghost))])

        # Switch first (the order the docs advise against): version 2 is extracted, and version 1
        # beside it while known faces lack version 2.
        switched = deployment.config("set", "descriptor", "default_face_descriptor_version=2")
        assert switched.returncode == 0, switched.stderr
        deadline = time.monotonic() + 60
        while (
            "restarting to apply descriptor" not in worker.log.read_text()
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.2)
        during = await send(deployment, probes(known, 2))
        assert all(e["descriptor_version"] == 2 for e in during)
        check_matches(during, version=1)  # the version 2 gallery is not complete: version 1 serves

        # The task, stopped midway (after 4 samples) and resumed while images keep coming.
        first = deployment.cli("reextract", "--version", "2", "--batch-size", "2", "--limit", "4")
        summary = re.compile(
            r"to-v2: (\w+); (\d+) samples re-extracted, (\d+) errors, (\d+) not re-extractable"
        )
        stopped = summary.search(first.stdout)
        assert stopped and stopped[1] == "stopped", first.stdout + first.stderr
        # The limit counts every sample taken, a deleted one among them.
        assert int(stopped[2]) + int(stopped[3]) + int(stopped[4]) - 1 == 4, first.stdout
        streamed = asyncio.create_task(send(deployment, probes(known, 3)))
        await asyncio.sleep(1)
        resumed = deployment.cli("reextract", "--version", "2", timeout=300)
        await streamed
        finished = summary.search(resumed.stdout)
        assert finished and finished[1] == "done", resumed.stdout
        # Each run reports the face without a sample; the deleted sample is reported once.
        assert int(stopped[4]) + int(finished[4]) == 3, first.stdout + resumed.stdout
        log = deployment.cli("reextract", "--version", "2")  # nothing left: a no-op
        assert "to-v2: done; 0 samples re-extracted" in log.stdout, log.stdout

        # The task's log: every sample once across both runs, the corrupt one as an error.
        entries = []
        async with TopicReader(deployment.settings, topics.REEXTRACTIONS, from_beginning=True) as r:
            while not await r.caught_up():
                entries += [e for k, e in await r.read(timeout=0.2) if k == "to-v2"]
        done = [e["sample_id"] for e in entries if e["error_code"] is None]
        assert len(done) == len(set(done))  # none extracted twice
        errors = {e["error_code"] for e in entries if e["error_code"]}
        assert errors == {"bad_wire_format", "deleted_sample", "missing_sample", "no_sample"}

        after = await send(deployment, probes(known, 4))
        check_matches(after, version=2)  # complete now: the matchers switched

        # Every event sample and every known face has a version 2 descriptor; version 1 kept.
        deadline = time.monotonic() + 60
        while True:
            counts = rows(
                clickhouse,
                deployment,
                "SELECT owner_kind, owner_id, face_index, descriptor_version, count() AS n "
                "FROM {db}.descriptors FINAL GROUP BY owner_kind, owner_id, face_index, "
                "descriptor_version",
            )
            have = {(r["owner_kind"], r["owner_id"], r["descriptor_version"]) for r in counts}
            events_seen = {r["owner_id"] for r in counts if r["owner_kind"] == "event"}
            missing = {(k, o) for k, o, v in have if v == 1} - {
                (k, o) for k, o, v in have if v == 2
            }
            missing -= {("face", orphan_id), ("face", ghost_id)}
            stored = len(events_seen) >= 5 * len(known)  # enrolments and four rounds of probes
            if (stored and not missing) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert not missing, missing
        assert all(r["n"] == 1 for r in counts)  # nothing extracted twice into the results
        assert len(events_seen) == 5 * len(known)
    finally:
        worker.stop()


async def test_the_task_over_http_with_progress_and_log(
    stack_env: dict[str, str], tmp_path: Path, testdata_dir: Path
) -> None:
    deployment = Deployment(stack_env, tmp_path)
    worker = WorkerProcess(deployment.env, tmp_path / "worker.log", *RELOAD)
    api = ApiProcess(deployment.env, tmp_path / "api.log")
    try:
        worker.wait_ready()
        api.wait_ready()
        known = people(testdata_dir)
        await send(
            deployment,
            [
                (files[0].read_bytes(), {"enroll": {"list_id": LIST, "user_data": name}})
                for name, files in known.items()
            ],
        )
        with Client(api.origin, account_id=ACCOUNT, admin_token=ADMIN_TOKEN) as client:
            with pytest.raises(ApiError) as refused:
                client.start_reextraction(7)
            assert (refused.value.status, refused.value.code) == (400, "bad_version")
            with pytest.raises(ApiError) as refused:
                client.start_reextraction(2, task_id="http", lanes=999)
            assert (refused.value.status, refused.value.code) == (400, "bad_lanes")
            started = client.start_reextraction(2, task_id="http", lanes=1)
            assert started.status in ("starting", "running")
            assert [t.task_id for t in client.list_tasks()] == ["http"]
            deadline = time.monotonic() + 120
            while (task := client.get_task("http")).status not in ("done", "failed"):
                assert time.monotonic() < deadline, task
                time.sleep(0.3)
            assert task.status == "done" and task.processed == len(known), task
            assert client.list_tasks() == [task]
            lines = client.task_log("http")
            assert len(lines) == len(known) and all(entry["ok"] for entry in lines)
            assert all(len(entry["face_ids"]) == 1 for entry in lines)
            with pytest.raises(ApiError) as missing:
                client.get_task("nope")
            assert missing.value.code == "task_not_found"
    finally:
        api.stop()
        worker.stop()


async def test_a_task_stopped_over_http_resumes_where_it_stopped(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    deployment = Deployment(stack_env, tmp_path)
    image = encode_jpeg(np.full((250, 250, 3), 128, np.uint8))
    sample_ids = [str(uuid.uuid4()) for _ in range(2000)]  # seconds of work: time to stop it
    codec = schemas.codec("Sample")
    await topics.ensure_topics(deployment.settings.kafka)
    await publish(
        deployment,
        topics.SAMPLES,
        [
            (
                sample_id,
                codec.encode(
                    {
                        "sample_id": sample_id,
                        "account_id": ACCOUNT,
                        "event_id": str(uuid.uuid4()),
                        "face_index": 0,
                        "created_at": datetime.now(UTC),
                        "image": image,
                    }
                ),
            )
            for sample_id in sample_ids
        ],
    )
    api = ApiProcess(deployment.env, tmp_path / "api.log")
    try:
        api.wait_ready()
        with Client(api.origin, account_id=ACCOUNT, admin_token=ADMIN_TOKEN) as client:

            def until(status: set[str], processed: int = 0) -> Task:
                deadline = time.monotonic() + 120
                while (task := client.get_task("halves")).status not in status or (
                    task.processed < processed
                ):
                    assert time.monotonic() < deadline and task.status != "failed", task
                    time.sleep(0.05)
                return task

            client.start_reextraction(1, task_id="halves")
            until({"running"}, processed=1)
            client.stop_task("halves")
            first = until({"stopped", "done"})
            assert first.status == "stopped" and 0 < first.processed < len(sample_ids), first
            client.start_reextraction(1, task_id="halves")  # the same id: resumes
            second = until({"done"})
            assert second.total == len(sample_ids) - first.processed, second
            assert first.processed + second.processed == len(sample_ids)
            logged = [entry["sample_id"] for entry in client.task_log("halves")]
            assert sorted(logged) == sorted(sample_ids)  # each once: none redone, none skipped
        # Both runs' batches reached InfluxDB as the API process's "reextract" stage.
        worker = f"{socket.gethostname()}-{api.process.pid}"
        result = influx_query(
            deployment.env,
            "SELECT sum(processed), sum(errors) FROM facestream_stage "
            f"WHERE stage = 'reextract' AND worker = '{worker}'",
            deployment.env["FACESTREAM_INFLUX_MONITORING__DATABASE"],
        )
        assert result["results"][0]["series"][0]["values"][0][1:] == [len(sample_ids), 0]
    finally:
        api.stop()
