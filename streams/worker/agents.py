"""Faust agents, wiring only: each takes a batch of raw messages from its topic and hands it to
its stage's runner (streams.worker.runner), which sends through the Faust topics.

Topics stay raw (bytes) on the Faust side, each TopicSpec (de)serialising in the runner: Faust
decodes a value before the agent sees it, and on a value it cannot decode it acks the message and
throws the error into the agent's stream (faust.transport.conductor, Channel.on_value_decode_error)
so the raw bytes a dead letter keeps would be lost and the agent would end. Encoding stays in the
runner too, where an output that breaks its contract or the size limit fails its message alone.
A batch is done once the broker has acknowledged all it sent; anything else that breaks it ends
the process before its offsets move (streams.worker.deadletters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

import faust
from faust.types import EventT

from streams.control.monitoring import Monitor
from streams.kafka import topics
from streams.kafka.gallery import GalleryIndex
from streams.kafka.topics import RecordT
from streams.models.modelset import ModelSet
from streams.settings import LiveSettings
from streams.worker.deadletters import finish_batch
from streams.worker.gallery_follower import GalleryFollower
from streams.worker.runner import Sent, StageRunner
from streams.worker.stages import (
    DetectStage,
    ExtractStage,
    LivenessStage,
    MatchStage,
    Stage,
    extraction_versions,
)

STAGES = ("detect", "liveness", "extract", "match", "store")


def _batches(
    stream: faust.StreamT[bytes], size: int, within: float
) -> AsyncIterator[Sequence[EventT[bytes]]]:
    """Batches of events with their offsets. The StreamT interface lacks take_events; every
    stream an agent is given is a faust.Stream, which has it."""
    return cast(faust.Stream[bytes], stream).take_events(size, within=within)


class FaustPort:
    """A runner's port onto the app's topics."""

    def __init__(self, topics: Mapping[str, faust.TopicT]) -> None:
        self.topics = topics

    async def send(self, topic: str, key: str | None, value: bytes | None) -> Sent:
        """Hands a message to the producer; the result resolves once the broker has it."""
        return await self.topics[topic].send(key=key.encode() if key else None, value=value)


class Pipeline:
    """Registers the agents of the chosen stages on a Faust app."""

    def __init__(self, app: faust.App, live: LiveSettings, stages: Sequence[str]) -> None:
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
        self.app = app
        # Sections read once here need a restart to change (streams.settings.RESTART_SECTIONS);
        # the stages read `live` for the rest.
        self.settings = settings = live.current
        self.monitor = Monitor(live)
        self.topics = {
            spec.suffix: app.topic(
                topics.topic_name(settings.kafka, spec),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.kafka.partitions,
                compacting=spec.compacted,
                config=topics.topic_config(settings.kafka, spec),
            )
            for spec in topics.ALL
        }
        self.port = FaustPort(self.topics)
        self.gallery = GalleryIndex()
        self.gallery_ready = asyncio.Event()
        models = ModelSet(
            settings.worker.models_dir, detection_threshold=settings.detection.score_threshold
        )
        live.subscribe(
            lambda old, new: models.set_detection_threshold(new.detection.score_threshold)
        )
        batch = settings.worker.batch_size
        if "detect" in stages:
            self._stage_agent(DetectStage(models, live), topics.IMAGES, batch)
        if "liveness" in stages:
            self._stage_agent(LivenessStage(models), topics.DETECTIONS, batch)
        if "extract" in stages or "match" in stages:
            # Both need the known faces.
            app.task(GalleryFollower(settings, self.gallery, self.gallery_ready).follow)
        if "extract" in stages:
            versions = extraction_versions(live, self.gallery)
            self._stage_agent(ExtractStage(models, versions), topics.LIVENESS, batch)
        if "match" in stages:
            self._stage_agent(MatchStage(self.gallery, live), topics.DESCRIPTORS, batch)
        if "store" in stages:
            self._store_agents()
        app.timer(Monitor.TICK_S)(self.monitor.tick)

    # -- stage agents ---------------------------------------------------------------------

    def _stage_agent(
        self, stage: Stage[RecordT], source: topics.TopicSpec[RecordT], batch: int
    ) -> None:
        max_bytes = self.settings.kafka.max_message_bytes
        runner = StageRunner(stage, source, self.port, self.monitor, max_bytes)
        within = self.settings.worker.batch_wait_s
        what = f"stage {stage.name}"

        async def agent(stream: faust.StreamT[bytes]) -> None:
            if isinstance(stage, MatchStage | ExtractStage):
                await self.gallery_ready.wait()
            async for events in _batches(stream, batch, within):
                await finish_batch(what, events, runner.run(events))

        self.app.agent(self.topics[source.suffix], name=f"facestream.{stage.name}")(agent)

    # -- storage --------------------------------------------------------------------------

    def _store_agents(self) -> None:
        from streams.worker import store  # it builds on this module

        store.register(self)
