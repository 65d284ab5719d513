"""Faust agents: each takes a batch from its topic, runs its stage, sends what the stage emits.

A message that cannot be decoded or processed becomes a dead-letter record with the reason
(and, when its event is known, an event with an error status); the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

import faust
from faust.types import EventT

import schemas
from processors.errors import ProcessingError
from sinks.clickhouse import connect
from sinks.migrate import upgrade
from sinks.store import EventSink, FaceSink, ReextractionSink
from sinks.types import Sink
from streams import topics
from streams.gallery import GalleryIndex
from streams.models import ModelSet
from streams.monitoring import Monitor
from streams.reader import TopicReader
from streams.settings import LiveSettings
from streams.stages import (
    DetectStage,
    ExtractStage,
    LivenessStage,
    MatchStage,
    Record,
    Result,
    Stage,
    error_event,
    extraction_versions,
)

log = logging.getLogger(__name__)

STAGES = ("detect", "liveness", "extract", "match", "store")


def _batches(
    stream: faust.StreamT[bytes], size: int, within: float
) -> AsyncIterator[Sequence[EventT]]:
    """Batches of events with their offsets. The StreamT interface lacks take_events; every
    stream an agent is given is a faust.Stream, which has it."""
    return cast(faust.Stream[bytes], stream).take_events(size, within=within)


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
            app.task(self._follow_gallery)  # both need the known faces
        if "extract" in stages:
            versions = extraction_versions(live, self.gallery)
            self._stage_agent(ExtractStage(models, versions), topics.LIVENESS, batch)
        if "match" in stages:
            self._stage_agent(MatchStage(self.gallery, live), topics.DESCRIPTORS, batch)
        if "store" in stages:
            self._store_agents()
        app.timer(Monitor.TICK_S)(self.monitor.tick)

    # -- stage agents ---------------------------------------------------------------------

    def _stage_agent(self, stage: Stage, source: topics.TopicSpec, batch: int) -> None:
        codec = schemas.codec(source.schema)
        within = self.settings.worker.batch_wait_s

        async def agent(stream: faust.StreamT[bytes]) -> None:
            if isinstance(stage, MatchStage | ExtractStage):
                await self.gallery_ready.wait()
            async for events in _batches(stream, batch, within):
                await self._process(stage, codec, events)

        self.app.agent(self.topics[source.suffix], name=f"facestream.{stage.name}")(agent)

    async def _process(self, stage: Stage, codec: schemas.Codec, events: Sequence[EventT]) -> None:
        started = time.perf_counter()
        decoded: list[tuple[EventT, Record]] = []
        failed = 0
        for event in events:
            try:
                decoded.append((event, codec.decode(event.value)))
            except schemas.SchemaError as error:
                await self._dead_letter(stage.name, event, error.code, str(error), None)
                failed += 1
        records = [record for _, record in decoded]
        if stage.compute_bound:
            # Off the event loop: onnxruntime releases the GIL, so fetching and sending go on.
            results = await asyncio.to_thread(self._run_isolated, stage, records)
        else:  # on the loop, where the gallery it reads is also updated
            results = self._run_isolated(stage, records)
        for (event, record), result in zip(decoded, results, strict=True):
            outcome = result.error or self._encode(result)
            if isinstance(outcome, ProcessingError):
                failed += 1
                await self._reject(stage.name, event, record, outcome)
                continue
            for output, key, value in outcome:
                await self._send(output, key, value)
        self.monitor.record(stage.name, len(events) - failed, failed, time.perf_counter() - started)

    @staticmethod
    def _encode(result: Result) -> list[tuple[str, str | None, bytes]] | ProcessingError:
        """All of a message's outputs, or the contract one of them breaks (then none is sent)."""
        try:
            return [
                (e.output, e.key, schemas.codec(topics.BY_SUFFIX[e.output].schema).encode(e.value))
                for e in result.emits
            ]
        except schemas.SchemaError as bad_output:
            return ProcessingError(str(bad_output), code=bad_output.code)

    @staticmethod
    def _run_isolated(stage: Stage, records: list[Record]) -> list[Result]:
        """Runs the batch; if it breaks, runs each message alone so one bad one fails alone."""
        if not records:
            return []
        try:
            return stage.run(records)
        except Exception:
            log.exception(
                "stage %s failed on a batch of %d; retrying one by one", stage.name, len(records)
            )
        results = []
        for record in records:
            try:
                results.extend(stage.run([record]))
            except Exception as exc:
                log.exception(
                    "stage %s failed on event %s", stage.name, record["context"]["event_id"]
                )
                error = ProcessingError(f"{stage.name} failed: {exc!r}", code="internal_error")
                results.append(Result(error=error))
        return results

    async def _send(self, output: str, key: str | None, value: bytes | None) -> None:
        await self.topics[output].send(key=key.encode() if key else None, value=value)

    async def _reject(
        self, stage: str, event: EventT, record: Record, error: ProcessingError
    ) -> None:
        context = record["context"]
        log.warning(
            "event %s rejected at %s: %s (%s)",
            context["event_id"],
            stage,
            error.message,
            error.code,
        )
        value = schemas.codec("Event").encode(error_event(context, error))
        await self._send("events", context["event_id"], value)
        await self._dead_letter(stage, event, error.code, error.message, context)

    async def _dead_letter(
        self, stage: str, event: EventT, code: str, message: str, context: Record | None
    ) -> None:
        msg = event.message
        letter = {
            "stage": stage,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "event_id": context["event_id"] if context else None,
            "account_id": context["account_id"] if context else None,
            "error_code": code,
            "error_message": message,
            "failed_at": datetime.now(UTC),
            "payload": event.value,
        }
        if context is None:
            log.warning(
                "undecodable message at %s %s[%d]@%d: %s (%s)",
                stage,
                msg.topic,
                msg.partition,
                msg.offset,
                message,
                code,
            )
        await self._send(
            "dead_letters",
            context["event_id"] if context else None,
            schemas.codec("DeadLetter").encode(letter),
        )

    # -- gallery --------------------------------------------------------------------------

    async def _follow_gallery(self) -> None:
        """Reads the whole compacted faces topic, then follows it; every matcher has it all."""
        async with TopicReader(self.settings, topics.FACES, from_beginning=True) as faces:
            while True:
                for face_id, face in await faces.read(timeout=0.2):
                    if face_id is not None:
                        self.gallery.apply(face_id, face)
                if not self.gallery_ready.is_set() and await faces.caught_up():
                    log.info("gallery loaded: %d faces", len(self.gallery))
                    self.gallery_ready.set()

    # -- storage --------------------------------------------------------------------------

    def _store_agents(self) -> None:
        storage = self.settings.storage
        client = connect(storage.clickhouse_url, storage.chdb_path)
        applied = upgrade(client, storage.database)
        log.info(
            "ClickHouse at %s: %d migrations applied", getattr(client, "url", "?"), len(applied)
        )
        # One thread owns the client: chDB and the native driver are not for concurrent use.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

        def value(schema: str) -> Callable[[EventT], Any]:
            codec = schemas.codec(schema)
            return lambda event: codec.decode(event.value)

        def keyed_face(event: EventT) -> tuple[str, Record | None]:
            face_id = bytes(event.key or b"").decode()  # a None value is a deleted face
            return face_id, None if event.value is None else schemas.codec("Face").decode(
                event.value
            )

        stores: list[tuple[str, Sink[Any], Callable[[EventT], Any]]] = [
            ("events", EventSink(client, storage.database), value("Event")),
            ("faces", FaceSink(client, storage.database), keyed_face),
            ("reextractions", ReextractionSink(client, storage.database), value("Reextraction")),
        ]
        for source, sink, storable in stores:
            name = f"store_{source}"

            async def store(
                stream: faust.StreamT[bytes],
                sink: Sink[Any] = sink,
                storable: Callable[[EventT], Any] = storable,
                name: str = name,
            ) -> None:
                async for events in _batches(stream, storage.batch_size, storage.flush_interval_s):
                    started = time.perf_counter()
                    failed = 0
                    for event in events:
                        try:
                            sink.add(storable(event))
                        except schemas.SchemaError as error:
                            failed += 1
                            await self._dead_letter(name, event, error.code, str(error), None)
                    loop = asyncio.get_running_loop()
                    written = await loop.run_in_executor(executor, sink.flush)
                    self.monitor.record(name, written, failed, time.perf_counter() - started)

            self.app.agent(self.topics[source], name=f"facestream.{name}")(store)
