"""What the API's handlers share: settings, models, the Kafka producer (the process's only one:
images, faces, lists and re-extraction results all go through it), the directory of faces and
lists, the feed of finished events (waiting requests, WebSocket subscribers: streams.api.feed),
and ClickHouse."""

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
from streams.api.feed import EventFeed
from streams.control.process import follower
from streams.kafka import topics
from streams.kafka.directory import Directory
from streams.kafka.images import ImageProducer, image_producer
from streams.models.modelset import ModelSet
from streams.settings import LiveSettings, Settings

Record = dict[str, Any]
log = logging.getLogger(__name__)

# 37 bytes an id: 1000 keep a lookup far under ClickHouse's 256 KiB max_query_size.
STORED_IDS_PER_QUERY = 1000


@dataclass
class Services:
    live: LiveSettings
    models: ModelSet
    images: ImageProducer
    producer: AIOKafkaProducer
    directory: Directory = field(default_factory=Directory)
    feed: EventFeed = field(default_factory=EventFeed)
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
        services = cls(
            live=live,
            models=models,
            images=ImageProducer(settings, producer),
            producer=producer,
        )
        if settings.storage.clickhouse_url:  # else nothing here reads events back
            services.feed.stored_ids = services.stored_events
        return services

    async def start(self) -> None:
        await topics.ensure_topics(self.settings.kafka)
        await self.producer.start()
        self._tasks = [
            asyncio.create_task(self.directory.follow(self.settings), name="directory"),
            asyncio.create_task(self.feed.follow(self.settings), name="events"),
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

    async def stored_events(self, accounts: Mapping[str, str]) -> set[str]:
        """Of some events (event id -> account id), those stored where the routes read them.
        The events table is ordered by account and event id: one lookup per account."""
        by_account: dict[str, list[str]] = {}
        for event_id, account in accounts.items():
            by_account.setdefault(account, []).append(event_id)
        table = f"{self.settings.storage.database}.events"
        stored: set[str] = set()
        for account, event_ids in by_account.items():
            for start in range(0, len(event_ids), STORED_IDS_PER_QUERY):
                ids = ",".join(event_ids[start : start + STORED_IDS_PER_QUERY])
                rows = await self.query(
                    f"SELECT event_id FROM {table} WHERE account_id = %(account)s "
                    "AND has(splitByChar(',', %(ids)s), event_id)",
                    {"account": account, "ids": ids},
                )
                stored.update(row["event_id"] for row in rows)
        return stored

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
