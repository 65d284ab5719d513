"""Kafka-side clients: send images into the pipeline, wait for their events to come out."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import schemas
from streams import topics
from streams.settings import Settings

Record = dict[str, Any]
# Room the rest of an Image message (context, framing) may take beside the image bytes.
ENVELOPE_BYTES = 64 * 1024


class ImageProducer:
    """Produces Image messages; images over the broker's limit travel as a claim check."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = topics.topic_name(settings.kafka, topics.IMAGES)
        self._codec = schemas.codec("Image")
        self._producer = AIOKafkaProducer(
            bootstrap_servers=topics.bootstrap_servers(settings.kafka),
            max_request_size=settings.kafka.max_message_bytes,
            linger_ms=5,
            acks="all",
        )

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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
    ) -> Record:
        event_id = event_id or str(uuid.uuid4())
        ref = None
        if len(data) > self.settings.kafka.max_message_bytes - ENVELOPE_BYTES:
            ref = self._store(event_id, data)
        context = {
            "event_id": event_id,
            "account_id": account_id,
            "created_at": datetime.now(UTC),
            "source": source,
            "list_ids": list_ids or [],
            "enroll": None if enroll is None else {"face_id": None, "user_data": None, **enroll},
            "timings": {},
        }
        return {"context": context, "data": None if ref else data, "data_ref": ref}

    def _store(self, event_id: str, data: bytes) -> str:
        folder = self.settings.image.claim_check_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / event_id
        path.write_bytes(data)
        return path.resolve().as_uri()

    async def send(self, data: bytes, **options: Any) -> str:
        record = self.image_record(data, **options)
        event_id: str = record["context"]["event_id"]
        await self.send_raw(self._codec.encode(record), key=event_id)
        return event_id

    async def send_raw(self, value: bytes, key: str | None = None) -> None:
        """Any bytes onto the images topic (the pipeline must survive what it cannot read)."""
        await self._producer.send(self.topic, value, key=key.encode() if key else None)

    async def flush(self) -> None:
        await self._producer.flush()


class TopicReader:
    """Reads a topic's new messages (those after `start`), decoded, across all partitions."""

    def __init__(self, settings: Settings, spec: topics.TopicSpec, from_beginning: bool = False):
        self.name = topics.topic_name(settings.kafka, spec)
        self._codec = schemas.codec(spec.schema)
        self._from_beginning = from_beginning
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=topics.bootstrap_servers(settings.kafka),
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=settings.kafka.max_message_bytes,
        )

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        await self._consumer.topics()
        numbers = self._consumer.partitions_for_topic(self.name) or set()
        partitions = [TopicPartition(self.name, p) for p in numbers]
        self._consumer.assign(partitions)
        if self._from_beginning:
            await self._consumer.seek_to_beginning(*partitions)
        else:
            await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # fix the positions now, before anything is sent
            await self._consumer.position(tp)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def read(self, timeout: float = 0.5) -> list[tuple[str | None, Record | None]]:
        batch = await self._consumer.getmany(timeout_ms=int(timeout * 1000))
        return [
            (
                None if m.key is None else m.key.decode(),
                None if m.value is None else self._codec.decode(m.value),
            )
            for records in batch.values()
            for m in records
        ]

    async def collect(self, event_ids: set[str], timeout: float) -> dict[str, Record]:
        """Events of the given ids (the first of each), until all came or the time is up."""
        found: dict[str, Record] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(event_ids) and time.monotonic() < deadline:
            for _, record in await self.read():
                if record is None:
                    continue
                event_id = record["context"]["event_id"]
                if event_id in event_ids and event_id not in found:
                    found[event_id] = record
            await asyncio.sleep(0)
        return found


def read_folder(folder: Path, extensions: frozenset[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff"})
