"""The contracts of the storage layer: a reader sees these before the implementations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

T_contra = TypeVar("T_contra", contravariant=True)
Row = Mapping[str, Any]


class Sink(Protocol[T_contra]):
    """Buffers items; `flush` writes what was added and returns how many items it wrote."""

    def add(self, item: T_contra) -> None: ...

    def flush(self) -> int: ...


class ClickHouseClient(Protocol):
    """The few calls the project makes, served by clickhouse-driver or by embedded chDB."""

    def execute(self, sql: str) -> None: ...

    def insert(self, table: str, rows: Sequence[Row]) -> None: ...

    def query(self, sql: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...
