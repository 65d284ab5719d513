"""Batched, idempotent ClickHouse sinks for events and faces (`add` then `flush`)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sinks.rows import event_rows, face_rows, reextraction_row, utc_now
from sinks.types import ClickHouseClient

Record = dict[str, Any]


class EventSink:
    """Writes events and their descriptors. A redelivered event id is skipped in the batch and
    among recently written ids; tables are ReplacingMergeTree, so a later duplicate that gets
    past that collapses on merge and under FINAL."""

    def __init__(self, client: ClickHouseClient, database: str, remember: int = 100_000) -> None:
        self._client = client
        self._db = database
        self._pending: OrderedDict[str, Record] = OrderedDict()
        self._written: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def add(self, item: Record) -> None:
        event_id = item["context"]["event_id"]
        if event_id not in self._written:
            self._pending[event_id] = item

    def flush(self) -> int:
        if not self._pending:
            return 0
        now = utc_now()
        events, descriptors = [], []
        for event in self._pending.values():
            row, described = event_rows(event, now)
            events.append(row)
            descriptors.extend(described)
        # Descriptors first: an event row only appears once everything it points to is there.
        self._client.insert(f"{self._db}.descriptors", descriptors)
        self._client.insert(f"{self._db}.events", events)
        for event_id in self._pending:
            self._written[event_id] = None
        while len(self._written) > self._remember:
            self._written.popitem(last=False)
        count = len(self._pending)
        self._pending.clear()
        return count


class FaceSink:
    """Writes gallery changes (upserts and tombstones) as they arrive on the faces topic."""

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        self._client = client
        self._db = database
        self._pending: OrderedDict[str, Record | None] = OrderedDict()

    def add(self, item: tuple[str, Record | None]) -> None:
        face_id, face = item
        self._pending.pop(face_id, None)  # the last change of a face in a batch wins
        self._pending[face_id] = face

    def flush(self) -> int:
        if not self._pending:
            return 0
        now = utc_now()
        faces, descriptors = [], []
        for face_id, face in self._pending.items():
            row, described = face_rows(face_id, face, now)
            faces.append(row)
            descriptors.extend(described)
        self._client.insert(f"{self._db}.descriptors", descriptors)
        self._client.insert(f"{self._db}.faces", faces)
        count = len(self._pending)
        self._pending.clear()
        return count


class ReextractionSink:
    """Writes the new descriptors of re-extracted event samples beside the old ones."""

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        self._client = client
        self._db = database
        self._pending: list[Record] = []

    def add(self, item: Record) -> None:
        self._pending.append(item)

    def flush(self) -> int:
        now = utc_now()
        rows = [row for item in self._pending if (row := reextraction_row(item, now)) is not None]
        self._client.insert(f"{self._db}.descriptors", rows)
        count = len(self._pending)
        self._pending.clear()
        return count
