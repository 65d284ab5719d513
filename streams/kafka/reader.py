"""Reads a whole topic, every partition, outside any consumer group: for processes that need
all of it (the matchers' gallery) or that wait for their own results (clients, tests)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

import schemas
from streams.kafka import topics
from streams.settings import Settings

Record = dict[str, Any]
Message: TypeAlias = ConsumerRecord[bytes, bytes]
Decoded: TypeAlias = tuple[Message, str | None, Any]  # the record, its key and value
Apply: TypeAlias = Callable[[str, Any, int], object]  # (key, value or None, offset)
log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0  # a follower that failed starts again after this, doubling up to the max
RETRY_MAX_S = 30.0


class UnusableRecord(ValueError):
    """A record that decodes to nothing a reader can use."""


def decode_record(
    spec: topics.TopicSpec[Any], key: bytes | None, value: bytes | None
) -> tuple[str | None, Any]:
    """A message's key and value as a reader uses them, or UnusableRecord / SchemaError. Plain
    code: a follower may run it in a thread, or in another process, of its own."""
    if key is None:
        if spec.compacted:
            raise UnusableRecord("no key, on a compacted topic")
        text = None
    else:
        try:
            text = key.decode()
        except UnicodeDecodeError:
            raise UnusableRecord(f"the key is not UTF-8: {key[:40]!r}") from None
    if value is None:
        # On a compacted topic a key names the thing and a null value deletes it; elsewhere a
        # null value carries nothing.
        if not spec.compacted:
            raise UnusableRecord("a null value")
        return text, None
    return text, spec.decode(value)


def decode_records(
    spec: topics.TopicSpec[Any], raw: Sequence[tuple[bytes | None, bytes | None]]
) -> tuple[list[tuple[int, str | None, Any]], dict[int, str]]:
    """Of (key, value) messages: (index, key, value) of each that decodes, in order, and why
    each other one does not, by index."""
    decoded, skipped = [], {}
    for i, (key, value) in enumerate(raw):
        try:
            decoded.append((i, *decode_record(spec, key, value)))
        except (UnusableRecord, schemas.SchemaError) as error:
            skipped[i] = str(error)
    return decoded, skipped


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
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    return ends


class TopicReader:
    """Decoded (key, value) pairs of one topic; a None value is a tombstone. Starts at the end
    (only what comes after `async with`) or at the beginning.

    It never raises on a record: one it cannot decode (a key that is not UTF-8, no key or a null
    value where none belongs, bytes that fit no schema) or that the caller cannot apply is
    skipped with one log line and counted in `skipped`. Readers are followers outside any
    consumer group, run by every process, so a dead letter from each would multiply; the record
    is dead-lettered once by the group consumer of its topic, where there is one (the store
    stage for faces and events).
    """

    def __init__(
        self, settings: Settings, spec: topics.TopicSpec[Any], from_beginning: bool = False
    ) -> None:
        self.settings = settings
        self.name = topics.topic_name(settings.kafka, spec)
        self.skipped = 0
        self._spec = spec
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

    async def read_raw(self, timeout: float = 0.5) -> list[Message]:
        """The records as they are on the topic, raw key and value bytes, nothing skipped: for a
        caller that must see even what does not decode (the config topic's bad keys). All that
        the consumer has fetched, as a bare consumer takes it: its fetch sizes bound a batch."""
        batch = await self._consumer.getmany(timeout_ms=int(timeout * 1000))
        return [m for records in batch.values() for m in records]

    async def read(self, timeout: float = 0.5) -> list[tuple[str | None, Any]]:
        return [(key, value) for key, value, _ in await self.read_with_offsets(timeout)]

    async def read_with_offsets(self, timeout: float = 0.5) -> list[tuple[str | None, Any, int]]:
        """(key, value, offset); a key's messages all sit in one partition, so its offsets order
        its versions."""
        decoded = self.decode(await self.read_raw(timeout))
        return [(key, value, m.offset) for m, key, value in decoded]

    async def apply_each(self, apply: Apply, timeout: float) -> None:
        """Reads once and applies each record of a compacted topic (see apply_decoded)."""
        self.apply_decoded(self.decode(await self.read_raw(timeout)), apply)

    def decode(self, records: Sequence[Message]) -> list[Decoded]:
        """The records that decode, in their order; the others skipped. Plain code, no awaits:
        a follower may run it (and apply_decoded) in a thread of its own, off the event loop."""
        decoded, skipped = decode_records(self._spec, [(m.key, m.value) for m in records])
        for i, reason in skipped.items():
            self.skip(records[i], reason)
        return [(records[i], key, value) for i, key, value in decoded]

    def apply_decoded(self, decoded: Sequence[Decoded], apply: Apply) -> None:
        """Applies each (key, value, offset) in order; a record that `apply` refuses (raises on)
        is skipped like an undecodable one, the rest go on."""
        for m, key, value in decoded:
            try:
                apply(key or "", value, m.offset)
            except ValueError as error:  # the record's own fault: one line is enough
                self.skip(m, str(error))
            except Exception as error:  # a bug shown by this record: keep its traceback
                self.skip(m, f"cannot apply it: {error!r}", exc_info=True)

    def skip(self, m: Message, reason: str, exc_info: bool = False) -> None:
        self.skipped += 1
        log.warning(
            "skipped a record of %s[%d]@%d: %s",
            m.topic,
            m.partition,
            m.offset,
            reason,
            exc_info=exc_info,
        )

    async def backlog(self) -> int:
        """How many of the records that were in the topic at the start are still to be read."""
        return sum([end - await self._consumer.position(tp) for tp, end in self._end.items()])

    async def caught_up(self) -> bool:
        """True once everything that was in the topic at the start has been read (handed out by
        a read). A partition that got there is not asked again: its position only moves on."""
        for tp, end in list(self._end.items()):
            if await self._consumer.position(tp) < end:
                return False
            del self._end[tp]
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


async def caught_up(*readers: TopicReader) -> bool:
    for reader in readers:
        if not await reader.caught_up():
            return False
    return True


async def keep_following(name: str, follow: Callable[[], Awaitable[None]]) -> None:
    """Runs a follower for as long as its process lives. Records never stop one (they are
    skipped); anything else that ends it (the broker gone, a bug) is logged and it starts
    again from its beginning, so a process never lives on with a dead follower."""
    retry_s = RETRY_FIRST_S
    while True:
        started = time.monotonic()
        try:
            await follow()
            log.error("the %s follower stopped; starting it again", name)
        except Exception:
            log.exception("the %s follower failed; starting it again in %.0f s", name, retry_s)
        if time.monotonic() - started > RETRY_MAX_S:  # it had run a while: not a crash loop
            retry_s = RETRY_FIRST_S
        await asyncio.sleep(retry_s)
        retry_s = min(2 * retry_s, RETRY_MAX_S)
