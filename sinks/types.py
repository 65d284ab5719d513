"""The contracts of the storage layer: a reader sees these before the implementations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T_contra = TypeVar("T_contra", contravariant=True)
Row = Mapping[str, Any]
# Values bound to `%(name)s` placeholders: escaped as literals by the client, never by callers.
ParamValue = str | int | float
Params = Mapping[str, ParamValue]


class StorageUnavailable(Exception):
    """ClickHouse cannot take writes now (connection, timeout, server trouble): retry later."""


class RowRefused(Exception):
    """ClickHouse refuses the data itself (a value out of a column's range, unparsable input):
    the same rows would be refused again."""


@dataclass(frozen=True)
class Refusal:
    """An item a sink could not store, with the tag it was added with and the reason."""

    tag: object
    reason: str


class RowsRefused(Exception):
    """Raised by `Sink.flush` after it stored every item it could: these were refused."""

    def __init__(self, written: int, refused: list[Refusal]) -> None:
        super().__init__(f"{len(refused)} refused, {written} stored")
        self.written = written
        self.refused = refused


class Sink(Protocol[T_contra]):
    """Buffers items; `flush` writes what was added and returns how many items it wrote.
    `flush` raises StorageUnavailable with the unwritten items still pending (call it again),
    or RowsRefused once the rest is written; `tag` names an item in a Refusal."""

    def add(self, item: T_contra, tag: object = None) -> None: ...

    def flush(self) -> int: ...


class ClickHouseClient(Protocol):
    """The few calls the project makes, served by clickhouse-driver or by embedded chDB.
    `insert` raises RowRefused or StorageUnavailable. `params` fill `%(name)s` placeholders
    (then a literal `%` is written `%%`); a value that is not str, int or float is a TypeError,
    a string that is not valid UTF-8 (a lone surrogate) a ValueError."""

    url: str  # for logs: any password is hidden

    def execute(self, sql: str, params: Params | None = None) -> None: ...

    def insert(self, table: str, rows: Sequence[Row]) -> None: ...

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...
