"""Tasks outlive the API process that ran them: a task stopped by its process's restart is found,
with its id, counts and log, by the new process and by another one; a task whose process was
killed -9 mid-run shows as interrupted (not running forever) and resumes from another process."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from processors.image import encode_jpeg
from schemas.records import Sample
from streams.client.http import Client, Task
from streams.control.launch import ApiProcess
from streams.kafka import topics
from tests.integration.conftest import ADMIN_TOKEN, Deployment
from tests.integration.test_reextraction import ACCOUNT, publish

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TASK = "survives"
SAMPLES = 2000  # seconds of work on one lane: time to restart and kill mid-run
HEARTBEAT_S = 0.5  # interrupted after 5 missed heartbeats: 2.5 s


async def publish_samples(deployment: Deployment) -> list[str]:
    sample_ids = [str(uuid.uuid4()) for _ in range(SAMPLES)]
    sample: Sample = {
        "sample_id": "",
        "account_id": ACCOUNT,
        "event_id": "",
        "face_index": 0,
        "created_at": datetime.now(UTC),
        "image": encode_jpeg(np.full((250, 250, 3), 128, np.uint8)),
    }
    records: list[tuple[str, bytes | None]] = [
        (i, topics.SAMPLES.encode({**sample, "sample_id": i, "event_id": str(uuid.uuid4())}))
        for i in sample_ids
    ]
    await topics.ensure_topics(deployment.settings.kafka)
    await publish(deployment, topics.SAMPLES, records)
    return sample_ids


def until(client: Client, status: set[str], processed: int = 0, timeout: float = 180) -> Task:
    deadline = time.monotonic() + timeout
    while (task := client.get_task(TASK)).status not in status or task.processed < processed:
        assert time.monotonic() < deadline and task.status != "failed", task
        time.sleep(0.05)
    return task


def client(api: ApiProcess) -> Client:
    return Client(api.origin, account_id=ACCOUNT, admin_token=ADMIN_TOKEN)


async def test_tasks_survive_a_restart_and_a_dead_process(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    deployment = Deployment(
        stack_env | {"FACESTREAM_API__TASK_HEARTBEAT_S": str(HEARTBEAT_S)}, tmp_path
    )
    sample_ids = await publish_samples(deployment)
    env, folder = deployment.env, deployment.folder
    started: list[ApiProcess] = []

    def api(name: str) -> ApiProcess:
        started.append(ApiProcess(env, folder / f"{name}.log"))
        return started[-1]

    try:
        first = api("first")
        first.wait_ready()
        with client(first) as one:
            one.start_reextraction(1, task_id=TASK, lanes=1)
            until(one, {"running"}, processed=1)
        first.stop()  # SIGTERM: the task stops after its batch, its state written

        second, third = api("second"), api("third")
        second.wait_ready()
        third.wait_ready()
        with client(second) as two, client(third) as three:
            stopped = two.get_task(TASK)
            assert stopped.task_id == TASK and stopped.status == "stopped", stopped
            assert 0 < stopped.processed < SAMPLES and stopped.total == SAMPLES, stopped
            assert three.get_task(TASK) == stopped
            assert two.list_tasks() == three.list_tasks() == [stopped]
            logged = [entry["sample_id"] for entry in three.task_log(TASK)]
            assert len(logged) == stopped.processed and set(logged) <= set(sample_ids)

            two.start_reextraction(1, task_id=TASK, lanes=1)  # resumed, then its process dies
            until(three, {"running"}, processed=1)
            second.process.kill()
            interrupted = until(three, {"interrupted"}, timeout=5 * HEARTBEAT_S + 10)
            assert str(second.process.pid) in str(interrupted.error), interrupted
            assert interrupted.total == SAMPLES - stopped.processed, interrupted

            three.start_reextraction(1, task_id=TASK, lanes=1)  # resumes where the commits are
            done = until(three, {"done"})
            assert done.errors == 0, done
            logged = [entry["sample_id"] for entry in three.task_log(TASK)]
            assert set(logged) == set(sample_ids)  # every sample, over the three runs
    finally:
        for process in started:
            process.stop()
