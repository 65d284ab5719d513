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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import schemas
from processors.errors import ProcessingError
from streams import topics
from streams.directory import Directory
from streams.models import ModelSet
from streams.reader import partitions_of
from streams.settings import Settings
from streams.stages import decode_sample

Record = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass
class Progress:
    total: int = 0  # samples in the topic when the task (re)started, still to do
    processed: int = 0
    errors: int = 0
    not_reextractable: int = 0  # known faces without a sample
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


class ReextractionTask:
    def __init__(
        self,
        settings: Settings,
        version: int,
        task_id: str,
        models: ModelSet | None = None,
        batch_size: int = 128,
        limit: int | None = None,
    ) -> None:
        self.settings = settings
        self.version = version
        self.task_id = task_id
        self.models = models or ModelSet(settings.worker.models_dir)
        self.batch_size = batch_size
        self.limit = limit  # stop (resumably) after this many samples in this run
        self.progress = Progress()
        self.stop_requested = asyncio.Event()
        self.directory = Directory()

    async def run(self, on_progress: Callable[[Progress], None] = lambda p: None) -> Progress:
        """Until every sample the topic holds has a descriptor of the version (or `stop`)."""
        extractor = self.models.extractor(self.version)  # an unknown version fails here, early
        await topics.ensure_topics(self.settings.kafka)
        follow = asyncio.create_task(self.directory.follow(self.settings))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=topics.bootstrap_servers(self.settings.kafka),
            max_request_size=self.settings.kafka.max_message_bytes,
            acks="all",
        )
        await self._producer.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=topics.bootstrap_servers(self.settings.kafka),
            group_id=group_id(self.settings, self.task_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=self.settings.kafka.max_message_bytes,
        )
        try:
            await self.directory.ready.wait()
            name = topics.topic_name(self.settings.kafka, topics.SAMPLES)
            partitions = await partitions_of(self.settings, name)
            await consumer.start()
            consumer.assign(partitions)
            end = await self._start_positions(consumer, partitions)
            await self._report_faces_without_samples()
            self.progress.status = "running"
            on_progress(self.progress)
            while not self.stop_requested.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                messages = [m for records in batch.values() for m in records]
                if messages:
                    await self._extract(extractor, messages)
                    await consumer.commit()
                    on_progress(self.progress)
                    done = self.progress.processed + self.progress.errors
                    if self.limit is not None and done >= self.limit:
                        self.stop()
                # A short batch means the fetched records ran out: time to look at the ends, so
                # the last batch is not followed by an idle wait.
                short = len(messages) < self.batch_size
                if (
                    short
                    and not self.stop_requested.is_set()
                    and await self._caught_up(consumer, end)
                ):
                    await self._report_missing_samples()
                    self.progress.status = "done"
                    break
            else:
                self.progress.status = "stopped"
            on_progress(self.progress)
            return self.progress
        finally:
            follow.cancel()
            await consumer.stop()
            await self._producer.stop()

    def stop(self) -> None:
        self.stop_requested.set()

    async def _start_positions(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        end = await consumer.end_offsets(partitions)
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
        return end

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
        # Samples that arrived during the task count too: they are checked against the ends now.
        latest = await consumer.end_offsets(list(end))
        for tp, offset in latest.items():
            if await consumer.position(tp) < offset:
                return False
        return True

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
            await self._log(
                {
                    "sample_id": face["sample_id"],
                    "account_id": face["account_id"],
                    "event_id": None,
                    "face_index": 0,
                    "face_ids": [face["face_id"]],
                    "descriptor": None,
                    "error_code": code,
                    "error_message": f"face {face['face_id']} {why}",
                }
            )
        return count

    async def _extract(self, extractor: Any, messages: list[Any]) -> None:
        described, refused = await asyncio.to_thread(_describe, extractor, messages)
        for sample_id, error in refused:
            self.progress.errors += 1
            await self._log(
                {
                    "sample_id": sample_id,
                    "account_id": "",
                    "event_id": None,
                    "face_index": 0,
                    "face_ids": [],
                    "descriptor": None,
                    "error_code": error.code,
                    "error_message": str(error),
                }
            )
        for sample, descriptor in described:
            faces = self.directory.faces_with_sample(sample["sample_id"])
            for face in faces:
                await self._add_to_face(face, descriptor)
            await self._log(
                {
                    "sample_id": sample["sample_id"],
                    "account_id": sample["account_id"],
                    "event_id": sample["event_id"],
                    "face_index": sample["face_index"],
                    "face_ids": [f["face_id"] for f in faces],
                    "descriptor": descriptor,
                    "error_code": None,
                    "error_message": None,
                }
            )
            self.progress.processed += 1
        await self._producer.flush()

    async def _add_to_face(self, face: Record, descriptor: bytes) -> None:
        kept = [d for d in face["descriptors"] if d["version"] != self.version]
        updated = {**face, "descriptors": [*kept, {"version": self.version, "vector": descriptor}]}
        name = topics.topic_name(self.settings.kafka, topics.FACES)
        value = schemas.codec("Face").encode(updated)
        metadata = await self._producer.send_and_wait(name, value, key=face["face_id"].encode())
        self.directory.apply_face(face["face_id"], updated, metadata.offset)

    async def _log(self, entry: Record) -> None:
        record = {
            "task_id": self.task_id,
            "version": self.version,
            "processed_at": datetime.now(UTC),
            **entry,
        }
        name = topics.topic_name(self.settings.kafka, topics.REEXTRACTIONS)
        value = schemas.codec("Reextraction").encode(record)
        await self._producer.send(name, value, key=self.task_id.encode())


Refused = schemas.SchemaError | ProcessingError


def _describe(
    extractor: Any, messages: list[Any]
) -> tuple[list[tuple[Record, bytes]], list[tuple[str | None, Refused]]]:
    """Decoding and extraction, run off the event loop so the next batch is fetched meanwhile:
    (sample, descriptor bytes) for each good sample, (key, error) for each bad one."""
    codec = schemas.codec("Sample")
    good: list[tuple[Record, np.ndarray]] = []
    refused: list[tuple[str | None, Refused]] = []
    for message in messages:
        if message.value is None:
            continue  # a deleted sample
        try:
            sample = codec.decode(message.value)
            good.append((sample, decode_sample(sample["image"])))
        except (schemas.SchemaError, ProcessingError) as error:
            refused.append((message.key.decode() if message.key else None, error))
    vectors = extractor.extract([image for _, image in good]) if good else []
    described = [
        (sample, np.asarray(vector, dtype="<f4").tobytes())
        for (sample, _), vector in zip(good, vectors, strict=True)
    ]
    return described, refused
