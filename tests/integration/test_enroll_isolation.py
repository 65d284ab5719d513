"""Enrollment through Kafka cannot reach another account: an Image whose enroll names another
account's face or list ends as a `forbidden` error event and dead letter, and changes nothing
the owner sees (real broker, worker and API)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import ApiProcess
from streams.kafka import topics
from streams.kafka.images import ImageProducer
from streams.kafka.reader import TopicReader
from streams.settings import Settings

pytestmark = pytest.mark.integration
JPEG = {"content-type": "image/jpeg"}
Record = dict[str, Any]


@pytest.fixture(scope="module")
def http(api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.origin, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def salley(testdata_dir: Path) -> list[bytes]:
    return [
        f.read_bytes() for f in read_folder(testdata_dir / "johns/John_Salley", IMAGE_EXTENSIONS)
    ]


async def enroll_through_kafka(
    settings: Settings, account: str, images: list[bytes], enrolls: list[Record]
) -> tuple[list[Record], list[Record]]:
    """Sends each image with its enroll; returns their events and dead letters, in order."""
    async with (
        TopicReader(settings, topics.EVENTS) as events,
        TopicReader(settings, topics.DEAD_LETTERS) as letters,
        ImageProducer(settings) as producer,
    ):
        ids = [
            await producer.send(image, account_id=account, enroll=enroll)
            for image, enroll in zip(images, enrolls, strict=True)
        ]
        await producer.flush()
        found = await events.collect(set(ids), timeout=90)
        dead: dict[str, Record] = {}
        deadline = time.monotonic() + 30
        while len(dead) < len(ids) and time.monotonic() < deadline:
            dead |= {r["event_id"]: r for _, r in await letters.read() if r["event_id"] in ids}
    return [found[i] for i in ids], [dead[i] for i in ids if i in dead]


async def test_an_enrollment_through_kafka_cannot_take_another_accounts_face_or_list(
    http: httpx.Client, settings: Settings, salley: list[bytes]
) -> None:
    owner, sender = str(uuid.uuid4()), str(uuid.uuid4())
    headers = {"Luna-Account-Id": owner}
    list_id = http.post("/v1/lists", headers=headers).json()["list_id"]
    created = http.post(
        "/v1/faces",
        headers=headers | JPEG,
        content=salley[0],
        params={"list_id": list_id, "user_data": "the owner's"},
    )
    assert created.status_code == 201, created.text
    (face,) = created.json()["faces"]
    before = http.get(f"/v1/faces/{face['face_id']}", headers=headers).json()
    time.sleep(1)  # the worker's gallery follows the faces and lists topics within a second

    events, letters = await enroll_through_kafka(
        settings,
        sender,
        salley[1:3],
        [
            {"face_id": face["face_id"], "list_id": str(uuid.uuid4()), "user_data": "taken"},
            {"list_id": list_id, "user_data": "slipped in"},
        ],
    )

    assert [(e["status"], e["error_code"]) for e in events] == [("error", "forbidden")] * 2
    assert [letter["error_code"] for letter in letters] == ["forbidden"] * 2
    after = http.get(f"/v1/faces/{face['face_id']}", headers=headers)
    assert after.status_code == 200
    assert after.json() == before
    assert http.get(f"/v1/lists/{list_id}", headers=headers).json()["face_count"] == 1
    # The owner's matches against its list hold its face only.
    probe = base64.b64encode(salley[3]).decode()
    body = {"references": [{"type": "image", "data": probe}], "candidates": {"list_ids": [list_id]}}
    (result,) = http.post("/v1/matcher/faces", headers=headers, json=body).json()["results"]
    assert [m["face_id"] for m in result["matches"]] == [face["face_id"]]
