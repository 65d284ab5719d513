"""Batched, idempotent ClickHouse sinks for events, faces, samples and re-extractions (`add`,
`flush`).

A flush writes its batch with one insert per table. When ClickHouse refuses the data
(RowRefused), the batch is split in halves until each refused item stands alone: the rest is
stored and the refused items are reported (RowsRefused). StorageUnavailable leaves what is not
yet written pending, so the next flush resumes where the failed one stopped.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from sinks.rows import event_rows, face_rows, reextraction_row, sample_row, utc_now
from sinks.types import ClickHouseClient, Refusal, Row, RowRefused, RowsRefused

Record = dict[str, Any]
Tables = dict[str, Sequence[Row]]
T = TypeVar("T")


class _TableSink(Generic[T]):
    # Write order: descriptors first, so an event or face row only appears once everything it
    # points to is there.
    TABLES: tuple[str, ...]

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        self._client = client
        self._db = database
        self._pending: OrderedDict[Hashable, tuple[T, object]] = OrderedDict()
        self._written = 0
        self._refused: list[Refusal] = []

    def _key(self, item: T) -> Hashable:
        raise NotImplementedError

    def _rows(self, item: T, now: datetime) -> Tables:
        raise NotImplementedError

    def _stored(self, keys: list[Hashable]) -> None:
        """Called with the keys of items just written."""

    def add(self, item: T, tag: object = None) -> None:
        key = self._key(item)
        self._pending.pop(key, None)  # the last copy of an item in a batch wins
        self._pending[key] = (item, tag)

    def flush(self) -> int:
        now = utc_now()
        built = []
        for key, (item, _) in list(self._pending.items()):
            try:
                built.append((key, self._rows(item, now)))
            except (KeyError, TypeError, ValueError) as exc:
                self._refuse(key, f"no rows from this record: {exc!r}")
        self._write(built)
        written, refused = self._written, self._refused
        self._written, self._refused = 0, []
        if refused:
            raise RowsRefused(written, refused)
        return written

    def _write(self, items: list[tuple[Hashable, Tables]]) -> None:
        if not items:
            return
        for table in self.TABLES:
            rows = [row for _, tables in items for row in tables.get(table, ())]
            try:
                self._client.insert(f"{self._db}.{table}", rows)
            except RowRefused as exc:
                if len(items) == 1:
                    self._refuse(items[0][0], f"{table}: {exc}")
                    return
                half = len(items) // 2
                self._write(items[:half])
                self._write(items[half:])
                return
        keys = [key for key, _ in items]
        for key in keys:
            del self._pending[key]
        self._written += len(keys)
        self._stored(keys)

    def _refuse(self, key: Hashable, reason: str) -> None:
        _, tag = self._pending.pop(key)
        self._refused.append(Refusal(tag, reason))


class EventSink(_TableSink[Record]):
    """Writes events and their descriptors. A redelivered event id is skipped in the batch and
    among recently written ids; tables are ReplacingMergeTree, so a later duplicate that gets
    past that collapses on merge and under FINAL."""

    TABLES = ("descriptors", "events")

    def __init__(self, client: ClickHouseClient, database: str, remember: int = 100_000) -> None:
        super().__init__(client, database)
        self._remembered: OrderedDict[Hashable, None] = OrderedDict()
        self._remember = remember

    def _key(self, item: Record) -> Hashable:
        event_id: str = item["context"]["event_id"]
        return event_id

    def _rows(self, item: Record, now: datetime) -> Tables:
        row, descriptors = event_rows(item, now)
        return {"descriptors": descriptors, "events": [row]}

    def add(self, item: Record, tag: object = None) -> None:
        if self._key(item) not in self._remembered:
            super().add(item, tag)

    def _stored(self, keys: list[Hashable]) -> None:
        self._remembered.update(dict.fromkeys(keys))
        while len(self._remembered) > self._remember:
            self._remembered.popitem(last=False)


class FaceSink(_TableSink[tuple[str, Record | None]]):
    """Writes gallery changes (upserts and tombstones) as they arrive on the faces topic."""

    TABLES = ("descriptors", "faces")

    def _key(self, item: tuple[str, Record | None]) -> Hashable:
        return item[0]

    def _rows(self, item: tuple[str, Record | None], now: datetime) -> Tables:
        row, descriptors = face_rows(*item, now)
        return {"descriptors": descriptors, "faces": [row]}


class SampleSink(_TableSink[tuple[str, Record | None]]):
    """Keeps the samples topic (samples and tombstones) where a request reads one at once."""

    TABLES = ("samples",)

    def _key(self, item: tuple[str, Record | None]) -> Hashable:
        return item[0]

    def _rows(self, item: tuple[str, Record | None], now: datetime) -> Tables:
        return {"samples": [sample_row(*item, now)]}


class ReextractionSink(_TableSink[Record]):
    """Writes the new descriptors of re-extracted event samples beside the old ones."""

    TABLES = ("descriptors",)

    def __init__(self, client: ClickHouseClient, database: str) -> None:
        super().__init__(client, database)
        self._serial = itertools.count()  # every record is its own item

    def _key(self, item: Record) -> Hashable:
        return next(self._serial)

    def _rows(self, item: Record, now: datetime) -> Tables:
        row = reextraction_row(item, now)
        return {"descriptors": [row] if row is not None else []}
