"""Reads a whole topic, every partition, outside any consumer group: for processes that need
all of it (the matchers' gallery) or that wait for their own results (clients, tests)."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

import schemas
from streams import topics
from streams.settings import Settings

Record = dict[str, Any]


async def partitions_of(settings: Settings, name: str, wait_s: float = 10) -> list[TopicPartition]:
    """The topic's partitions; a topic created a moment ago may take a little while to show."""
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap_servers(settings.kafka))
    await admin.start()
    deadline = time.monotonic() + wait_s
    try:
        while True:
            (described,) = await admin.describe_topics([name])
            if not described["error_code"] and described["partitions"]:
                return [TopicPartition(name, p["partition"]) for p in described["partitions"]]
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"topic {name} is not available (Kafka error {described['error_code']})"
                )
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def assign_with_ends(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Assigns the partitions; returns their end offsets, asked for first: once assigned, the
    consumer's long-polling fetch would hold that request back for up to fetch_max_wait_ms
    (measured: 0.5 s)."""
    ends = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    return ends


class TopicReader:
    """Decoded (key, value) pairs of one topic; a None value is a tombstone. Starts at the end
    (only what comes after `async with`) or at the beginning."""

    def __init__(
        self,
        settings: Settings,
        spec: topics.TopicSpec,
        from_beginning: bool = False,
        raw: bool = False,
    ) -> None:
        self.settings = settings
        self.name = topics.topic_name(settings.kafka, spec)
        # raw: values come as the bytes on the topic, for a reader that must survive garbage.
        self._codec = None if raw else schemas.codec(spec.schema)
        self._from_beginning = from_beginning
        self._end: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> Self:
        partitions = await partitions_of(self.settings, self.name)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=topics.bootstrap_servers(self.settings.kafka),
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=self.settings.kafka.max_message_bytes,
        )
        await self._consumer.start()
        self._end = await assign_with_ends(self._consumer, partitions)
        if self._from_beginning:
            await self._consumer.seek_to_beginning(*partitions)
        else:
            await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # fix the positions now, before anything else is sent
            await self._consumer.position(tp)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def read(self, timeout: float = 0.5) -> list[tuple[str | None, Any]]:
        return [(key, value) for key, value, _ in await self.read_with_offsets(timeout)]

    async def read_with_offsets(self, timeout: float = 0.5) -> list[tuple[str | None, Any, int]]:
        """(key, value, offset); a key's messages all sit in one partition, so its offsets order
        its versions."""
        batch = await self._consumer.getmany(timeout_ms=int(timeout * 1000), max_records=1000)
        return [
            (
                None if m.key is None else m.key.decode(),
                self._value(m.value),
                m.offset,
            )
            for records in batch.values()
            for m in records
        ]

    def _value(self, value: bytes | None) -> Any:
        if value is None or self._codec is None:
            return value
        return self._codec.decode(value)

    async def caught_up(self) -> bool:
        """True once everything that was in the topic at the start has been read."""
        for tp, end in self._end.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def collect(self, event_ids: set[str], timeout: float) -> dict[str, Record]:
        """Records of the given event ids (the first of each), until all came or time is up."""
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
