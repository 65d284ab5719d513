"""Faust agents: each takes a batch from its topic, runs its stage, sends what the stage emits.

A message that cannot be decoded or processed becomes a dead-letter record with the reason
(and, when its event is known, an event with an error status); the batch goes on. A batch is
done once the broker has acknowledged all it sent; anything else that breaks it ends the process
before its offsets move (streams.deadletters).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import cast

import faust
from faust.types import EventT, RecordMetadata

import schemas
from processors.errors import ProcessingError
from streams import ranges, topics
from streams.client import ENVELOPE_BYTES
from streams.deadletters import MESSAGE_BOUND, finish_batch, letter
from streams.gallery import GalleryIndex
from streams.models import ModelSet
from streams.monitoring import Monitor
from streams.reader import TopicReader, keep_following
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

Sent = Awaitable[RecordMetadata]  # a message handed to the producer, until the broker has it


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
        what = f"stage {stage.name}"

        async def agent(stream: faust.StreamT[bytes]) -> None:
            if isinstance(stage, MatchStage | ExtractStage):
                await self.gallery_ready.wait()
            async for events in _batches(stream, batch, within):
                await finish_batch(what, events, self._process(stage, codec, events))

        self.app.agent(self.topics[source.suffix], name=f"facestream.{stage.name}")(agent)

    async def _process(self, stage: Stage, codec: schemas.Codec, events: Sequence[EventT]) -> None:
        """Runs a batch through its stage. Returns once the broker has acknowledged every output,
        error event and dead letter of the batch: only then may its offsets be committed."""
        started = time.perf_counter()
        sent: list[Sent] = []
        decoded: list[tuple[EventT, Record]] = []
        for event in events:
            trusted = None  # a record whose context may be answered with an error event
            try:
                record = codec.decode(event.value)
                ranges.check_context(record)
                trusted = record
                ranges.check(codec.name, record)
                decoded.append((event, record))
            except schemas.SchemaError as error:
                rejected = ProcessingError(str(error), code=error.code)
                sent += await self._reject(stage.name, event, trusted, rejected)
        failed = len(events) - len(decoded)
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
                sent += await self._reject(stage.name, event, record, outcome)
                continue
            for output, key, value in outcome:
                sent.append(await self._send(output, key, value))
        await asyncio.gather(*sent)  # a send the broker refused raises: the batch stays unacked
        self.monitor.record(stage.name, len(events) - failed, failed, time.perf_counter() - started)

    def _encode(self, result: Result) -> list[tuple[str, str | None, bytes]] | ProcessingError:
        """All of a message's outputs, or the contract one of them breaks (then none is sent)."""
        try:
            encoded: list[tuple[str, str | None, bytes]] = [
                (e.output, e.key, schemas.codec(topics.BY_SUFFIX[e.output].schema).encode(e.value))
                for e in result.emits
            ]
        except schemas.SchemaError as bad_output:
            return ProcessingError(str(bad_output), code=bad_output.code)
        limit = self.settings.kafka.max_message_bytes - ENVELOPE_BYTES
        for output, _, value in encoded:
            if len(value) > limit:  # the broker would refuse it, and the batch with it
                return ProcessingError(
                    f"its {output} message is {len(value)} bytes, over the {limit}-byte limit",
                    code="output_too_large",
                )
        return encoded

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
            except ProcessingError as rule:  # a rule of the stage, with its own code
                results.append(Result(error=rule))
            except Exception as exc:
                log.exception(
                    "stage %s failed on event %s", stage.name, record["context"]["event_id"]
                )
                error = ProcessingError(f"{stage.name} failed: {exc!r}", code="internal_error")
                results.append(Result(error=error))
        return results

    async def _send(self, output: str, key: str | None, value: bytes | None) -> Sent:
        """Hands a message to the producer; the result resolves once the broker has it."""
        return await self.topics[output].send(key=key.encode() if key else None, value=value)

    async def _reject(
        self, stage: str, event: EventT, record: Record | None, error: ProcessingError
    ) -> list[Sent]:
        """A dead letter, and an error event when the message's event is known."""
        if record is None:
            return [await self._dead_letter(stage, event, error.code, error.message, None)]
        context = record["context"]
        log.warning(
            "event %s rejected at %s: %s (%s)",
            context["event_id"],
            stage,
            error.message,
            error.code,
        )
        value = schemas.codec("Event").encode(error_event(context, error))
        return [
            await self._send("events", context["event_id"], value),
            await self._dead_letter(stage, event, error.code, error.message, context),
        ]

    async def _dead_letter(
        self, stage: str, event: EventT, code: str, message: str, context: Record | None
    ) -> Sent:
        """Sends the message's dead letter (bounded: it always fits); returns its delivery."""
        if context is None:
            msg = event.message
            log.warning(
                "undecodable message at %s %s[%d]@%d: %s (%s)",
                stage,
                msg.topic,
                msg.partition,
                msg.offset,
                message[:MESSAGE_BOUND],
                code,
            )
        return await self._send(
            "dead_letters",
            context["event_id"] if context else None,
            schemas.codec("DeadLetter").encode(letter(stage, event, code, message, context)),
        )

    # -- gallery --------------------------------------------------------------------------

    async def _follow_gallery(self) -> None:
        """Reads the whole compacted faces and lists topics, then follows them; every matcher
        has them all (the lists' owners: no account enrolls into another's list). Records it
        cannot apply are skipped; if it fails otherwise it starts again, never left dead."""

        async def follow() -> None:
            async with (
                TopicReader(self.settings, topics.FACES, from_beginning=True) as faces,
                TopicReader(self.settings, topics.LISTS, from_beginning=True) as lists,
            ):
                while True:
                    await faces.apply_each(lambda key, face, _: self.gallery.apply(key, face), 0.2)
                    await lists.apply_each(
                        lambda key, lst, _: self.gallery.apply_list(key, lst), 0.05
                    )
                    loaded = await faces.caught_up() and await lists.caught_up()
                    if not self.gallery_ready.is_set() and loaded:
                        log.info("gallery loaded: %d faces", len(self.gallery))
                        self.gallery_ready.set()

        await keep_following("gallery", follow)

    # -- storage --------------------------------------------------------------------------

    def _store_agents(self) -> None:
        from streams import store_agents  # it builds on this module

        store_agents.register(self)
