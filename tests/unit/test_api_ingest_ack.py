"""POST /v1/images answers 202 only for an image the broker has acknowledged: the answer waits
for the acknowledgement, and a refused send is no 202."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from starlette.applications import Starlette

import schemas
from streams.api.app import ROUTES
from streams.api.errors import HANDLERS
from streams.api.feed import EventFeed
from streams.kafka.directory import Directory
from streams.kafka.images import ImageProducer
from streams.settings import Settings

ACCOUNT = {"Luna-Account-Id": str(uuid.uuid4()), "content-type": "image/jpeg"}


class Broker:
    """An AIOKafkaProducer whose acknowledgements the test gives."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[Any]] = []
        self.values: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        self.values.append(value)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


@dataclass
class IngestServices:
    """What send_image uses of streams.api.services.Services."""

    broker: Broker
    settings: Settings = field(default_factory=Settings)
    directory: Directory = field(default_factory=Directory)
    feed: EventFeed = field(default_factory=EventFeed)

    @property
    def images(self) -> ImageProducer:
        return ImageProducer(self.settings, cast(AIOKafkaProducer, self.broker))


async def post_image(broker: Broker) -> asyncio.Task[httpx.Response]:
    """The request, started; it has reached the broker when this returns."""
    app = Starlette(routes=ROUTES, exception_handlers=HANDLERS)
    app.state.services = IngestServices(broker)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api"
    )

    async def post() -> httpx.Response:
        async with client:
            return await client.post("/v1/images", content=b"jpeg bytes", headers=ACCOUNT)

    task = asyncio.create_task(post())
    while not broker.acks:
        await asyncio.sleep(0.01)
    return task


async def test_the_202_waits_for_the_broker() -> None:
    broker = Broker()
    answer = await post_image(broker)
    await asyncio.sleep(0.2)
    assert not answer.done()  # sent, not acknowledged: no answer yet
    broker.acks[0].set_result(None)
    response = await answer
    assert response.status_code == 202
    image = schemas.codec("Image").decode(broker.values[0])
    assert response.json() == {"event_id": image["context"]["event_id"]}


async def test_an_unacknowledged_image_is_no_202() -> None:
    broker = Broker()
    answer = await post_image(broker)
    broker.acks[0].set_exception(KafkaTimeoutError())
    response = await answer
    assert response.status_code == 500
    assert response.json()["error_code"] == "internal_error"
