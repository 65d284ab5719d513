"""Re-extraction by stream replay: the samples topic, from its beginning, under the task's own
consumer group, through the extractor of the new descriptor version.

New descriptors go beside the old ones: a known face gets its new version added on the faces
topic; an event's new descriptor goes to the reextractions topic, which the store stage writes
to ClickHouse and which is also the task's log. Offsets are committed only after a batch's
results are acknowledged, so a stopped task resumes where it stopped; a batch redone after a
crash writes the same keys again, which storage collapses, so no sample counts twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata

import schemas
from processors.errors import ProcessingError
from processors.types import DescriptorExtractor
from schemas.records import Face, Reextraction, Sample
from streams.control.monitoring import Monitor
from streams.kafka import topics
from streams.kafka.directory import Directory
from streams.kafka.reader import assign_with_ends, partitions_of
from streams.models.modelset import ModelSet
from streams.settings import LiveSettings, Settings
from streams.worker.stages import decode_sample

log = logging.getLogger(__name__)


@dataclass
class Progress:
    total: int = 0  # samples in the topic when the task (re)started, still to do
    processed: int = 0
    errors: int = 0
    not_reextractable: int = 0  # known faces without a sample, samples deleted from the topic
    status: str = "starting"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "total": self.total,
            "processed": self.processed,
            "errors": self.errors,
            "not_reextractable": self.not_reextractable,
        }


def group_id(settings: Settings, task_id: str) -> str:
    return f"{settings.kafka.topic_prefix}.reextract.{task_id}"


MONITORED_STAGE = "reextract"
MAX_LANES = 64
LANE_CHUNK = 16  # samples per extraction call; measured best on 2 cores with 8 to 16


@dataclass
class _Batch:
    """Fetched samples whose extraction is under way, and the offsets that commit them."""

    work: asyncio.Future[Extracted]
    offsets: dict[TopicPartition, int]
    fetched_at: float = field(default_factory=time.perf_counter)


class ReextractionTask:
    def __init__(
        self,
        settings: Settings,
        version: int,
        task_id: str,
        models: ModelSet | None = None,
        batch_size: int = 128,
        limit: int | None = None,
        lanes: int | None = None,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        """`producer`: the process's started one (the API's), else the task makes its own."""
        self.settings = settings
        self._shared_producer = producer
        self.version = version
        self.task_id = task_id
        self.models = models or ModelSet(settings.worker.models_dir)
        self.batch_size = batch_size
        self.limit = limit  # stop (resumably) after this many samples in this run
        # Single-threaded sessions run side by side, one per core: on 2 cores they extract
        # about 10% more per second than one session's own intra-op threads, and the Kafka work
        # beside them slows one lane instead of stalling every parallel operator.
        self.lanes = lanes or len(os.sched_getaffinity(0))
        self.progress = Progress()
        self.stop_requested = asyncio.Event()
        self.directory = Directory()
        # Points like a worker stage's (stage "reextract"), when monitoring is on.
        self.monitor = Monitor(LiveSettings(settings))
        self._fetched = 0

    async def run(self, on_progress: Callable[[Progress], None] = lambda p: None) -> Progress:
        """Until every sample the topic holds has a descriptor of the version (or `stop`)."""
        # An unknown version fails here, early.
        extractor = self.models.extractor(self.version, threads=1)
        await topics.ensure_topics(self.settings.kafka)
        follow = asyncio.create_task(self.directory.follow(self.settings))
        owned = self._shared_producer is None
        producer = self._shared_producer or topics.producer(self.settings.kafka)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=topics.bootstrap_servers(self.settings.kafka),
            group_id=group_id(self.settings, self.task_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=self.settings.kafka.max_message_bytes,
        )
        try:
            starts = [producer.start()] if owned else []
            await asyncio.gather(
                *starts, self._start_consumer(consumer), self.directory.ready.wait()
            )
            return await self.replay(consumer, producer, extractor, on_progress)
        finally:
            follow.cancel()
            await consumer.stop()
            if owned:
                await producer.stop()

    async def replay(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        extractor: DescriptorExtractor,
        on_progress: Callable[[Progress], None] = lambda p: None,
    ) -> Progress:
        """The task over started Kafka clients, positioned at the task's offsets, and a loaded
        directory (unit tests give it in-memory ones)."""
        self._producer = producer
        await self._report_faces_without_samples()
        self.progress.status = "running"
        on_progress(self.progress)
        with ThreadPoolExecutor(self.lanes, thread_name_prefix=f"reextract-{self.task_id}") as pool:
            await self._replay(
                consumer, lambda messages: self._describe(pool, extractor, messages), on_progress
            )
        await self.monitor.flush()
        on_progress(self.progress)
        return self.progress

    async def _replay(
        self,
        consumer: AIOKafkaConsumer,
        describe: Callable[[list[Any]], asyncio.Future[Extracted]],
        on_progress: Callable[[Progress], None],
    ) -> None:
        """Batch n+1 is fetched and extracting while batch n's results are written and its
        offsets committed, so the lanes never wait on Kafka."""
        in_flight: list[_Batch] = []  # oldest first, two at most
        try:
            while True:
                messages = []
                if not self._stopping():
                    # While a batch extracts, a fetch that takes long means the topic is drained:
                    # the batch is finished then rather than after a long poll.
                    messages = await self._fetch(consumer, wait_ms=100 if in_flight else 500)
                if messages:
                    in_flight.append(_Batch(describe(messages), _next_offsets(messages)))
                if len(in_flight) == 2 or (in_flight and not messages):
                    await self._finish(consumer, in_flight.pop(0))
                    on_progress(self.progress)
                    await self.monitor.tick()
                if in_flight:
                    continue
                if self._stopping():
                    self.progress.status = "stopped"
                    return
                if await _caught_up(consumer):
                    await self._report_missing_samples()
                    self.progress.status = "done"
                    return
        finally:  # after an error: the extractions under way end before their pool does
            await asyncio.gather(*(batch.work for batch in in_flight), return_exceptions=True)

    def _stopping(self) -> bool:
        limited = self.limit is not None and self._fetched >= self.limit
        return limited or self.stop_requested.is_set()

    async def _fetch(self, consumer: AIOKafkaConsumer, wait_ms: int) -> list[Any]:
        wanted = self.batch_size
        if self.limit is not None:
            wanted = min(wanted, self.limit - self._fetched)
        batch = await consumer.getmany(timeout_ms=wait_ms, max_records=wanted)
        messages = [m for records in batch.values() for m in records]
        self._fetched += len(messages)
        return messages

    def _describe(
        self, pool: ThreadPoolExecutor, extractor: DescriptorExtractor, messages: list[Any]
    ) -> asyncio.Future[Extracted]:
        """The batch in chunks over the lanes; one (described, refused) for the whole batch."""
        loop = asyncio.get_running_loop()
        chunks = [
            loop.run_in_executor(pool, _describe, extractor, messages[i : i + LANE_CHUNK])
            for i in range(0, len(messages), LANE_CHUNK)
        ]

        async def merged() -> Extracted:
            described: list[Described] = []
            refused: list[RefusedSample] = []
            for chunk_described, chunk_refused in await asyncio.gather(*chunks):
                described += chunk_described
                refused += chunk_refused
            return described, refused

        return asyncio.ensure_future(merged())

    def stop(self) -> None:
        self.stop_requested.set()

    async def _start_consumer(self, consumer: AIOKafkaConsumer) -> None:
        """Joins the task's offsets; counts what is left to do."""
        await consumer.start()
        partitions = await partitions_of(
            self.settings, topics.topic_name(self.settings.kafka, topics.SAMPLES)
        )
        end = await assign_with_ends(consumer, partitions)
        committed = 0
        for tp in partitions:
            committed += min(await consumer.position(tp), end[tp])
        self.progress.total = sum(end.values()) - committed
        log.info(
            "task %s: %d samples to re-extract to version %d",
            self.task_id,
            self.progress.total,
            self.version,
        )

    async def _report_faces_without_samples(self) -> None:
        self.progress.not_reextractable += await self._report_faces(
            has_sample=False, code="no_sample", why="has no sample to re-extract from"
        )

    async def _report_missing_samples(self) -> None:
        """Faces whose sample never came through the replay (deleted or lost)."""
        self.progress.errors += await self._report_faces(
            has_sample=True, code="missing_sample", why="has a sample not on the samples topic"
        )
        await self._producer.flush()

    async def _report_faces(self, *, has_sample: bool, code: str, why: str) -> int:
        """Logs the faces still without this version, with or without a sample; their count."""
        count = 0
        for face in list(self.directory.faces.values()):
            done = any(d["version"] == self.version for d in face["descriptors"])
            if done or (face["sample_id"] is not None) != has_sample:
                continue
            count += 1
            message = f"face {face['face_id']} {why}"
            await self._log(
                face["sample_id"], face["account_id"], [face["face_id"]], error=(code, message)
            )
        return count

    async def _finish(self, consumer: AIOKafkaConsumer, batch: _Batch) -> None:
        """Writes the batch's results and, once Kafka has them all, commits its offsets."""
        described, refused = await batch.work
        errors = sum(error.code != DELETED for _, error in refused)
        self.progress.errors += errors
        self.progress.not_reextractable += len(refused) - errors
        for sample_id, error in refused:
            await self._log(sample_id, "", [], error=(error.code, str(error)))
        updates = []
        for sample, descriptor in described:
            faces = self.directory.faces_with_sample(sample["sample_id"])
            updates += [await self._add_to_face(face, descriptor) for face in faces]
            await self._log(
                sample["sample_id"],
                sample["account_id"],
                [f["face_id"] for f in faces],
                event_id=sample["event_id"],
                face_index=sample["face_index"],
                descriptor=descriptor,
            )
            self.progress.processed += 1
        await self._producer.flush()
        for face_id, face, sent in updates:
            self.directory.apply_face(face_id, face, (await sent).offset)
        await consumer.commit(batch.offsets)
        seconds = time.perf_counter() - batch.fetched_at  # fetched to committed
        self.monitor.record(MONITORED_STAGE, len(described), errors, seconds)

    async def _add_to_face(
        self, face: Face, descriptor: bytes
    ) -> tuple[str, Face, asyncio.Future[RecordMetadata]]:
        """Sends the face with the version added; the directory takes it once it is written."""
        kept = [d for d in face["descriptors"] if d["version"] != self.version]
        updated: Face = {
            **face,
            "descriptors": [*kept, {"version": self.version, "vector": descriptor}],
        }
        name = topics.topic_name(self.settings.kafka, topics.FACES)
        value = topics.FACES.encode(updated)
        sent = await self._producer.send(name, value, key=face["face_id"].encode())
        return face["face_id"], updated, sent

    async def _log(
        self,
        sample_id: str | None,
        account_id: str,
        face_ids: list[str],
        *,
        event_id: str | None = None,
        face_index: int = 0,
        descriptor: bytes | None = None,
        error: tuple[str, str] | None = None,  # code, message
    ) -> None:
        """One entry of the task's log: a sample re-extracted, or why it was not."""
        code, message = error or (None, None)
        record: Reextraction = {
            "task_id": self.task_id,
            "sample_id": sample_id,
            "account_id": account_id,
            "event_id": event_id,
            "face_index": face_index,
            "face_ids": face_ids,
            "version": self.version,
            "descriptor": descriptor,
            "error_code": code,
            "error_message": message,
            "processed_at": datetime.now(UTC),
        }
        name = topics.topic_name(self.settings.kafka, topics.REEXTRACTIONS)
        value = topics.REEXTRACTIONS.encode(record)
        await self._producer.send(name, value, key=self.task_id.encode())


Refused = schemas.SchemaError | ProcessingError
DELETED = "deleted_sample"  # not re-extractable rather than an error
Described = tuple[Sample, bytes]  # a sample and its new descriptor's bytes
RefusedSample = tuple[str | None, Refused]  # a sample's key and why it was refused
Extracted = tuple[list[Described], list[RefusedSample]]  # of a chunk or a batch


def _next_offsets(messages: list[Any]) -> dict[TopicPartition, int]:
    """The offsets to commit once these messages are done: each partition's last one + 1."""
    offsets: dict[TopicPartition, int] = {}
    for m in messages:
        tp = TopicPartition(m.topic, m.partition)
        offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
    return offsets


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    """Every partition read up to the end its last fetch reported. Samples that arrived during
    the task count too; asking the broker instead would wait behind the long-polling fetch."""
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def _describe(extractor: DescriptorExtractor, messages: list[Any]) -> Extracted:
    """Decoding and extraction of a chunk, in a lane (a thread) off the event loop:
    (sample, descriptor bytes) for each good sample, (key, error) for each bad one."""
    good: list[tuple[Sample, np.ndarray]] = []
    refused: list[RefusedSample] = []
    for message in messages:
        # Only for the log of a refused sample: a key that is not UTF-8 must not end the task.
        key = message.key.decode(errors="backslashreplace") if message.key else None
        if message.value is None:  # a tombstone: the event or face it was cut for has none now
            refused.append((key, ProcessingError("the sample was deleted", code=DELETED)))
            continue
        try:
            sample = topics.SAMPLES.decode(message.value)
            good.append((sample, decode_sample(sample["image"])))
        except (schemas.SchemaError, ProcessingError) as error:
            refused.append((key, error))
    vectors = extractor.extract([image for _, image in good]) if good else ()
    described = [
        (sample, np.asarray(vector, dtype="<f4").tobytes())
        for (sample, _), vector in zip(good, vectors, strict=True)
    ]
    return described, refused
