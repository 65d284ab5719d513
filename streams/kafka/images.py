"""Kafka-side clients: send images into the pipeline, wait for their events to come out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, cast

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from schemas.records import Context, Enrollment, Image
from streams.kafka import claim_check, topics
from streams.settings import KafkaSettings, Settings

Record = dict[str, Any]
# Room the rest of an Image message (context, framing) may take beside the image bytes.
ENVELOPE_BYTES = 64 * 1024
# aiokafka keeps one request in flight per broker and, by default, 16 KiB per partition's batch:
# one image per partition per round trip. Room for many lets senders that wait share each trip.
BATCH_BYTES = 1024 * 1024


def image_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    """A producer for images: batches hold many, gathered for a few milliseconds."""
    return topics.producer(settings, linger_ms=2, max_batch_size=BATCH_BYTES)


class ImageProducer:
    """Produces Image messages; images over the broker's limit travel as a claim check.

    Given a producer, it sends through that one (a process keeps one producer: the API's
    publishes faces and lists through it too) and leaves starting and stopping it to its owner;
    otherwise it makes its own, started and stopped with `async with`."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer | None = None) -> None:
        self.settings = settings
        self.topic = topics.topic_name(settings.kafka, topics.IMAGES)
        self._owned = producer is None
        self._producer = producer or image_producer(settings.kafka)

    async def __aenter__(self) -> Self:
        if self._owned:
            await self._producer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owned:
            await self._producer.stop()

    def image_record(
        self,
        data: bytes,
        *,
        account_id: str,
        list_ids: list[str] | None = None,
        source: str | None = None,
        enroll: Record | None = None,
        event_id: str | None = None,
        min_quality: float | None = None,
        estimate_liveness: bool | None = None,
        estimate_basic_attributes: bool | None = None,
    ) -> Image:
        event_id = event_id or str(uuid.uuid4())
        ref = None
        if len(data) > self.settings.kafka.max_message_bytes - ENVELOPE_BYTES:
            ref = claim_check.store(self.settings.image.claim_check_dir, account_id, data)
        # `enroll` may leave out its optional fields; the Image's contract checks it at encode.
        defaults = {"face_id": None, "user_data": None}
        context: Context = {
            "event_id": event_id,
            "account_id": account_id,
            "created_at": datetime.now(UTC),
            "source": source,
            "list_ids": list_ids or [],
            "enroll": None if enroll is None else cast(Enrollment, defaults | enroll),
            "timings": {},
        }
        return {
            "context": context,
            "data": None if ref else data,
            "data_ref": ref,
            "min_quality": min_quality,
            "estimate_liveness": estimate_liveness,
            "estimate_basic_attributes": estimate_basic_attributes,
        }

    async def send(self, data: bytes, **options: Any) -> str:
        record = self.image_record(data, **options)
        await self.send_record(record)
        return record["context"]["event_id"]

    async def send_record(self, record: Image) -> None:
        await self.send_raw(topics.IMAGES.encode(record), key=record["context"]["event_id"])

    async def deliver(self, record: Image) -> None:
        """Sends the record and returns once the broker has acknowledged it."""
        await (await self._send(topics.IMAGES.encode(record), record["context"]["event_id"]))

    async def send_raw(self, value: bytes, key: str | None = None) -> None:
        """Any bytes onto the images topic (the pipeline must survive what it cannot read).
        Queued, not yet acknowledged: `flush` waits for what was queued."""
        await self._send(value, key)

    async def _send(self, value: bytes, key: str | None) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = await self._producer.send(
            self.topic, value, key=key.encode() if key else None
        )
        return future

    async def flush(self) -> None:
        await self._producer.flush()
