"""A testing source and sink: runs the stages in memory, passing each message through its
topic's Avro contract as Kafka would, so a stage is testable without a broker."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import schemas
from processors.errors import ProcessingError
from streams import topics
from streams.gallery import GalleryIndex
from streams.models import ModelSet
from streams.settings import LiveSettings, Settings
from streams.stages import (
    DetectStage,
    ExtractStage,
    LivenessStage,
    MatchStage,
    Record,
    Stage,
    error_event,
    extraction_versions,
)


class InMemoryPipeline:
    def __init__(
        self, models: ModelSet, settings: Settings, gallery: GalleryIndex | None = None
    ) -> None:
        self.gallery = gallery or GalleryIndex()
        self.live = LiveSettings(settings)
        versions = extraction_versions(self.live, self.gallery)
        self.chain: list[tuple[Stage, str]] = [
            (DetectStage(models, self.live), "detections"),
            (LivenessStage(models), "liveness"),
            (ExtractStage(models, versions), "descriptors"),
            (MatchStage(self.gallery, self.live), "events"),
        ]
        self.sink: dict[str, list[tuple[str | None, Record]]] = defaultdict(list)
        self.errors: list[ProcessingError] = []

    def send(self, images: Sequence[Record]) -> list[Record]:
        """Runs Image records through every stage; returns the events they ended as."""
        first_event = len(self.sink["events"])
        batch = [self._through_topic("images", image) for image in images]
        for stage, passes_on in self.chain:
            results = stage.run(batch)
            next_batch = []
            for record, result in zip(batch, results, strict=True):
                if result.error is not None:
                    self.errors.append(result.error)
                    context = record["context"]
                    self._emit("events", context["event_id"], error_event(context, result.error))
                    continue
                for emit in result.emits:
                    value = self._emit(emit.output, emit.key, emit.value)
                    if emit.output == passes_on:
                        next_batch.append(value)
            batch = next_batch
        return [value for _, value in self.sink["events"][first_event:]]

    def _emit(self, output: str, key: str | None, value: Record) -> Record:
        decoded = self._through_topic(output, value)
        self.sink[output].append((key, decoded))
        return decoded

    @staticmethod
    def _through_topic(output: str, value: Record) -> Record:
        codec = schemas.codec(topics.BY_SUFFIX[output].schema)
        return codec.decode(codec.encode(value))
