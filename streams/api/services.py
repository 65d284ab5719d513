"""What the API's handlers share: settings, models, the Kafka producer (the process's only one:
images, faces, lists and re-extraction results all go through it), the directory of faces and
lists, the events being waited for, and ClickHouse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from starlette.concurrency import run_in_threadpool

from schemas import records
from sinks.clickhouse import connect
from sinks.types import ClickHouseClient, Params
from streams.api.errors import ApiError
from streams.control.process import follower
from streams.kafka import topics
from streams.kafka.directory import Directory
from streams.kafka.images import ImageProducer, image_producer
from streams.kafka.reader import TopicReader, keep_following
from streams.models.modelset import ModelSet
from streams.settings import LiveSettings, Settings

Record = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass
class EventWaiter:
    """Futures for the events that requests wait for, completed from the events topic."""

    pending: dict[str, asyncio.Future[Record]] = field(default_factory=dict)

    def expect(self, event_id: str) -> asyncio.Future[Record]:
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        self.pending[event_id] = future
        return future

    def forget(self, event_id: str) -> None:
        """No longer waited for (answered, timed out, or never sent); unknown ids are fine."""
        self.pending.pop(event_id, None)

    async def follow(self, settings: Settings) -> None:
        """Started again after a failure (a broker outage), never left dead: requests that wait
        would all time out."""
        await keep_following("events", lambda: self._follow(settings))

    async def _follow(self, settings: Settings) -> None:
        async with TopicReader(settings, topics.EVENTS) as events:  # it skips garbage
            while True:
                for _, event in await events.read(timeout=0.2):
                    future = self.pending.pop(event["context"]["event_id"], None)
                    if future is not None and not future.done():
                        future.set_result(event)


@dataclass
class Services:
    live: LiveSettings
    models: ModelSet
    images: ImageProducer
    producer: AIOKafkaProducer
    directory: Directory = field(default_factory=Directory)
    waiter: EventWaiter = field(default_factory=EventWaiter)
    tasks: dict[str, Any] = field(default_factory=dict)  # re-extractions run here (api.tasks)
    _clickhouse: ClickHouseClient | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _clickhouse_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one query at a time

    @property
    def settings(self) -> Settings:
        """The settings in force now (they change under --config-reload)."""
        return self.live.current

    @classmethod
    def create(cls, live: LiveSettings) -> Services:
        settings = live.current
        models = ModelSet(settings.worker.models_dir, settings.detection.score_threshold)
        live.subscribe(
            lambda old, new: models.set_detection_threshold(new.detection.score_threshold)
        )
        producer = image_producer(settings.kafka)  # images are most of what it sends
        return cls(
            live=live,
            models=models,
            images=ImageProducer(settings, producer),
            producer=producer,
        )

    async def start(self) -> None:
        await topics.ensure_topics(self.settings.kafka)
        await self.producer.start()
        self._tasks = [
            asyncio.create_task(self.directory.follow(self.settings), name="directory"),
            asyncio.create_task(self.waiter.follow(self.settings), name="events"),
        ]
        config = follower(self.live)
        if config is not None:
            self._tasks.append(asyncio.create_task(config.run(), name="config"))
        await asyncio.wait_for(self.directory.ready.wait(), timeout=60)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.producer.stop()
        if self._clickhouse is not None:
            self._clickhouse.close()

    async def publish(
        self, spec: topics.TopicSpec[Any], key: str, record: Mapping[str, Any] | None
    ) -> int:
        """A record (or a tombstone) onto a topic, acknowledged; returns its offset."""
        value = None if record is None else spec.encode(record)
        name = topics.topic_name(self.settings.kafka, spec)
        metadata = await self.producer.send_and_wait(name, value, key=key.encode())
        offset: int = metadata.offset
        return offset

    async def save_face(self, face_id: str, face: records.Face | None) -> None:
        """Publishes a face (None deletes it) and applies it here at once: read-your-writes."""
        self.directory.apply_face(face_id, face, await self.publish(topics.FACES, face_id, face))

    async def save_list(self, list_id: str, record: records.List | None) -> None:
        self.directory.apply_list(
            list_id, record, await self.publish(topics.LISTS, list_id, record)
        )

    async def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """`sql` with `params` bound to its `%(name)s` placeholders by the client."""
        storage = self.settings.storage
        if not storage.clickhouse_url:
            raise ApiError(
                503,
                "storage_not_shared",
                "events are stored in embedded chDB, which the worker process owns; set "
                "FACESTREAM_STORAGE__CLICKHOUSE_URL to a ClickHouse server to read them here",
            )
        async with self._clickhouse_lock:
            if self._clickhouse is None:
                self._clickhouse = connect(storage.clickhouse_url, storage.chdb_path)
            return await run_in_threadpool(self._clickhouse.query, sql, params)
