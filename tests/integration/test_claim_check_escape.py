"""Claim-check references that leave the claim-check folder, through the real broker and worker:
each ends as one error event with one code and message; the good claim check next to them is ok."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path

import pytest

from sinks.clickhouse import DriverClient
from streams.control.launch import WorkerProcess
from streams.kafka import claim_check, topics
from streams.kafka.images import ImageProducer
from streams.kafka.reader import TopicReader
from streams.settings import Settings
from tests.integration.test_pipeline import event_rows

pytestmark = pytest.mark.integration

REFUSAL = ("bad_image_ref", "the image reference names no stored image of this account")


async def test_escaping_references_are_refused_alike(
    worker: WorkerProcess, settings: Settings, clickhouse: DriverClient, testdata_dir: Path
) -> None:
    account, other = str(uuid.uuid4()), str(uuid.uuid4())
    photo = testdata_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg"
    folder = settings.image.claim_check_dir
    good = claim_check.store(folder, account, photo.read_bytes())
    pipe = claim_check.account_folder(folder, account) / f"pipe-{uuid.uuid4().hex}"
    os.mkfifo(pipe)
    refs = {
        "passwd": "file:///etc/passwd",
        "photo outside": photo.resolve().as_uri(),
        "http": f"http://x{photo.resolve()}",
        "fifo": pipe.as_uri(),
        "another account's": claim_check.store(folder, other, photo.read_bytes()),
        "good": good,
    }
    try:
        async with (
            TopicReader(settings, topics.EVENTS) as events,
            ImageProducer(settings) as producer,
        ):
            ids = {}
            for name, ref in refs.items():
                record = producer.image_record(b"", account_id=account)
                await producer.send_record(record | {"data": None, "data_ref": ref})
                ids[record["context"]["event_id"]] = name
            await producer.flush()
            found = await events.collect(set(ids), timeout=120)
    finally:
        pipe.unlink()
    outcomes = {
        ids[i]: (e["status"], e["error_code"], e["error_message"]) for i, e in found.items()
    }
    assert outcomes == {name: ("error", *REFUSAL) for name in refs if name != "good"} | {
        "good": ("ok", None, None)
    }

    rows = event_rows(clickhouse, settings.storage.database, ids, "event_id, status, error_code")
    stored = Counter((r["status"], r["error_code"]) for r in rows)
    assert len(rows) == len(ids) == 6
    assert stored == {("error", "bad_image_ref"): 5, ("ok", None): 1}
    assert worker.process.poll() is None
