"""GET /v1/ws/events against the real API, worker and stack, with a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from schemas.records import Event
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.client.http import AsyncClient
from streams.control.launch import ApiProcess
from streams.kafka import topics
from streams.settings import Settings
from tests import sink_records
from tests.integration.conftest import serving

pytestmark = pytest.mark.integration

ACCOUNT_HEADER = "Luna-Account-Id"


def socket_url(api: ApiProcess, **query: str) -> str:
    return f"ws://127.0.0.1:{api.port}/v1/ws/events?" + "&".join(
        f"{k}={v}" for k, v in query.items()
    )


async def subscribe(
    api: ApiProcess, account: str | None, *, header: bool = True, **filters: str
) -> ClientConnection:
    query = filters if header or account is None else {**filters, "account_id": account}
    headers = {ACCOUNT_HEADER: account} if header and account else {}
    ws = await connect(socket_url(api, **query), additional_headers=headers)
    hello = json.loads(await ws.recv())
    assert hello["subscribed"]["account_id"] == account, hello
    return ws


async def receive(ws: ClientConnection, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), timeout)) for _ in range(count)]


async def nothing_more(ws: ClientConnection, within: float = 1.0) -> bool:
    try:
        extra = await asyncio.wait_for(ws.recv(), within)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message {extra!r}")


async def post_image(api: ApiProcess, account: str, data: bytes) -> str:
    async with httpx.AsyncClient(base_url=api.origin, timeout=30) as client:
        answer = await client.post(
            "/v1/images",
            content=data,
            headers={ACCOUNT_HEADER: account, "content-type": "image/jpeg"},
        )
    assert answer.status_code == 202, answer.text
    event_id: str = answer.json()["event_id"]
    return event_id


async def test_each_account_gets_its_own_events_as_stored(
    api: ApiProcess, testdata_dir: Path
) -> None:
    photos = read_folder(testdata_dir / "johns" / "John_Savage", IMAGE_EXTENSIONS)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    every_a = await subscribe(api, a)
    errors_a = await subscribe(api, a, status="error")
    every_b = await subscribe(api, b, header=False)  # a browser's way: the account in the query
    try:
        sent_a = [await post_image(api, a, p.read_bytes()) for p in photos[:2]]
        sent_b = [await post_image(api, b, photos[2].read_bytes())]
        broken = await post_image(api, a, photos[3].read_bytes()[:200])  # cut short
        got_a = await receive(every_a, 3)
        assert {e["event_id"] for e in got_a} == {*sent_a, broken}
        assert {e["account_id"] for e in got_a} == {a}
        (error,) = await receive(errors_a, 1)
        assert (error["event_id"], error["status"]) == (broken, "error")
        assert [e["event_id"] for e in await receive(every_b, 1)] == sent_b
        assert await nothing_more(every_a) and await nothing_more(errors_a)
        assert await nothing_more(every_b)
        async with httpx.AsyncClient(base_url=api.origin) as client:  # stored when pushed
            for pushed in got_a:
                read = await client.get(
                    f"/v1/events/{pushed['event_id']}", headers={ACCOUNT_HEADER: a}
                )
                assert read.status_code == 200
                assert [read.json()[k] for k in ("event_id", "status")] == [
                    pushed[k] for k in ("event_id", "status")
                ]
                assert len(read.json()["faces"]) == len(pushed["faces"])
    finally:
        for ws in (every_a, errors_a, every_b):
            await ws.close()


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ({}, {}, "account_id_missing"),
        ({}, {ACCOUNT_HEADER: "not-a-uuid"}, "account_id_malformed"),
        ({"similarity_gte": "high"}, {ACCOUNT_HEADER: str(uuid.uuid4())}, "bad_parameter"),
        ({"status": "fine"}, {ACCOUNT_HEADER: str(uuid.uuid4())}, "bad_parameter"),
    ],
)
async def test_a_refused_subscription_says_why(
    api: ApiProcess, query: dict[str, str], headers: dict[str, str], code: str
) -> None:
    async with connect(socket_url(api, **query), additional_headers=headers) as ws:
        refusal = json.loads(await ws.recv())
        assert refusal["error_code"] == code and refusal["desc"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def produce_events(settings: Settings, account: str, count: int) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap_servers(settings.kafka))
    await producer.start()
    try:
        name = topics.topic_name(settings.kafka, topics.EVENTS)
        records = [sink_records.event(account) for _ in range(count)]
        sent = [
            await producer.send(
                name, topics.EVENTS.encode(cast(Event, r)), key=r["context"]["event_id"].encode()
            )
            for r in records
        ]
        await asyncio.gather(*sent)
        return [r["context"]["event_id"] for r in records]
    finally:
        await producer.stop()


@pytest.mark.slow
async def test_a_slow_subscriber_is_told_and_dropped_and_may_come_back(
    api: ApiProcess,
    stack_env: dict[str, str],
    settings: Settings,
    tmp_path: Path,
    testdata_dir: Path,
) -> None:
    account = str(uuid.uuid4())
    small = {"FACESTREAM_API__WS_QUEUE_SIZE": "50"}
    with contextlib.contextmanager(serving)(
        ApiProcess(stack_env | small, tmp_path / "api.log")
    ) as private:
        # A client that reads nothing: a tiny receive window and one frame of its own buffer.
        raw = socket.create_connection(("127.0.0.1", private.port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow = await connect(
            socket_url(private),
            additional_headers={ACCOUNT_HEADER: account},
            sock=raw,
            max_queue=1,
        )
        assert "subscribed" in json.loads(await slow.recv())
        keeping_up = await subscribe(api, account)  # the session's API, 10,000 a queue
        count = 3000
        sent = await produce_events(settings, account, count)
        got = await receive(keeping_up, count)
        assert sorted(e["event_id"] for e in got) == sorted(sent)
        started = time.perf_counter()
        assert httpx.get(f"{private.origin}/v1/health", timeout=5).status_code == 200
        assert time.perf_counter() - started < 1.0  # the API was not held up by its subscriber

        # Now the slow one reads: what was under way, then why it was dropped.
        messages: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                messages.append(json.loads(await asyncio.wait_for(slow.recv(), 30)))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert messages[-1]["error_code"] == "subscriber_too_slow"
        delivered = [m["event_id"] for m in messages[:-1]]
        assert len(delivered) < count  # those sent before it fell behind, if any
        assert len(set(delivered)) == len(delivered) and set(delivered) <= set(sent)

        back = await subscribe(private, account)  # reconnecting works
        (again,) = await produce_events(settings, account, 1)
        assert [e["event_id"] for e in await receive(back, 1)] == [again]
        assert [e["event_id"] for e in await receive(keeping_up, 1)] == [again]
        await back.close()
        await keeping_up.close()


async def test_the_async_client_subscribes(api: ApiProcess, testdata_dir: Path) -> None:
    photo = read_folder(testdata_dir / "johns" / "John_Simm", IMAGE_EXTENSIONS)[0].read_bytes()
    account = str(uuid.uuid4())
    async with AsyncClient(api.origin, account_id=account) as client:
        stream = client.events(status="ok")
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(1.0)  # subscribed by then (the server's first message)
        event_id = await post_image(api, account, photo)
        event = await asyncio.wait_for(first, 60)
        assert (event.event_id, event.status) == (event_id, "ok")
        await stream.aclose()
        bad = client.events(gender="other")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await anext(bad)
    plain = httpx.get(f"{api.origin}/v1/ws/events", headers={ACCOUNT_HEADER: account})
    assert (plain.status_code, plain.json()["error_code"]) == (426, "upgrade_required")


async def test_a_subscription_to_several_lists(api: ApiProcess, testdata_dir: Path) -> None:
    photo = read_folder(testdata_dir / "johns" / "John_Savage", IMAGE_EXTENSIONS)[0].read_bytes()
    account = str(uuid.uuid4())
    async with AsyncClient(api.origin, account_id=account) as client:
        first, second, third = [await client.create_list() for _ in range(3)]
        stream = client.events(list_id=[first, second])
        taking = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(1.0)
        wanted = []
        for lists in ([first], [third], [second], []):
            event = await client.send_image(photo, list_ids=lists, wait=True)
            if lists and lists[0] != third:
                wanted.append(event.event_id)
        got = [(await asyncio.wait_for(taking, 30)).event_id]
        got.append((await asyncio.wait_for(anext(stream), 30)).event_id)
        assert got == wanted
        listed = await client.list_events(list_id=[first, second])
        assert sorted(e.event_id for e in listed.items) == sorted(wanted)
        await stream.aclose()
