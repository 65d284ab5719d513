"""A testing source and sink for the stages: runs them in memory through the same runner as the
Faust agents (streams.worker.runner), so decoding, range checks, failure isolation, dead letters and
the topics' contracts behave as under Faust, without a broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from schemas.records import Event, Image
from streams.control.monitoring import Monitor
from streams.kafka import topics
from streams.kafka.gallery import GalleryIndex
from streams.models.modelset import ModelSet
from streams.settings import LiveSettings, Settings
from streams.worker.runner import Sent, StageRunner
from streams.worker.stages import (
    DetectStage,
    ExtractStage,
    LivenessStage,
    MatchStage,
    extraction_versions,
)


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Message:
    """A message as a runner gets it from a topic."""

    key: bytes | None
    value: bytes | None
    message: Position


class InMemoryPort:
    """The sink: keeps every message sent, raw per topic (a later stage's source) and decoded
    through its topic's contract in `sink` (what tests read). Refuses a value over the broker's
    limit as the producer does; every other delivery succeeds."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.raw: dict[str, list[Message]] = defaultdict(list)
        # Each value of the records.py type of its topic.
        self.sink: dict[str, list[tuple[str | None, Any]]] = defaultdict(list)

    async def send(self, topic: str, key: str | None, value: bytes | None) -> Sent:
        if value is not None and len(value) > self.max_message_bytes:
            raise MessageSizeTooLargeError(f"{len(value)} bytes on {topic}")
        sent = self.raw[topic]
        encoded_key = key.encode() if key else None
        sent.append(Message(encoded_key, value, Position(topic, 0, len(sent))))
        self.sink[topic].append((key, topics.BY_SUFFIX[topic].decode(value)))
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


class InMemoryPipeline:
    """The source: images sent go onto the in-memory `images` topic, and each stage's runner in
    turn takes what arrived on its source topic since its last run."""

    def __init__(
        self, models: ModelSet, settings: Settings, gallery: GalleryIndex | None = None
    ) -> None:
        self.gallery = gallery or GalleryIndex()
        self.live = LiveSettings(settings)
        self.port = InMemoryPort(settings.kafka.max_message_bytes)
        self.sink = self.port.sink
        versions = extraction_versions(self.live, self.gallery)
        monitor = Monitor(self.live)
        wiring = (self.port, monitor, settings.kafka.max_message_bytes)
        self.runners: list[StageRunner[Any]] = [
            StageRunner(DetectStage(models, self.live), topics.IMAGES, *wiring),
            StageRunner(LivenessStage(models), topics.DETECTIONS, *wiring),
            StageRunner(ExtractStage(models, versions), topics.LIVENESS, *wiring),
            StageRunner(MatchStage(self.gallery, self.live), topics.DESCRIPTORS, *wiring),
        ]
        self._taken: dict[str, int] = defaultdict(int)  # messages of a topic already run

    def send(self, images: Sequence[Image]) -> list[Event]:
        """Runs Image records through every stage; returns the events they ended as."""
        return asyncio.run(self._send(images))

    async def _send(self, images: Sequence[Image]) -> list[Event]:
        first_event = len(self.sink["events"])
        for image in images:
            await self.port.send(
                "images", image["context"]["event_id"], topics.IMAGES.encode(image)
            )
        for runner in self.runners:
            source = runner.source.suffix
            batch = self.port.raw[source][self._taken[source] :]
            self._taken[source] += len(batch)
            await runner.run(batch)
        return [value for _, value in self.sink["events"][first_event:]]
