"""ClickHouse clients: clickhouse-driver against a server, chDB in-process when none is set."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sinks.types import ClickHouseClient, Row


class DriverClient:
    """A ClickHouse server over the native protocol (works from 18.16 to current releases)."""

    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client

        parsed = urlparse(url)
        self.url = url
        self._client = Client(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 9000,
            user=parsed.username or "default",
            password=parsed.password or "",
            connect_timeout=5,
            send_receive_timeout=60,
        )

    def execute(self, sql: str) -> None:
        self._client.execute(sql)

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        self._client.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES",
            [tuple(row[c] for c in columns) for row in rows],
        )

    def query(self, sql: str) -> list[dict[str, Any]]:
        data, types = self._client.execute(sql, with_column_types=True)
        names = [name for name, _ in types]
        return [dict(zip(names, row, strict=True)) for row in data]

    def close(self) -> None:
        self._client.disconnect()


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return int(value.timestamp())  # DateTime columns accept epoch seconds
    raise TypeError(f"cannot store {type(value).__name__} in ClickHouse")


class ChdbClient:
    """Embedded ClickHouse (chDB): one process owns the folder while it is open."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.url = f"chdb://{path}"
        self._session = session.Session(str(path))

    def execute(self, sql: str) -> None:
        self._session.query(sql)

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        body = "\n".join(json.dumps(row, default=_json_default) for row in rows)
        self._session.query(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}")

    def query(self, sql: str) -> list[dict[str, Any]]:
        result = self._session.query(sql, "JSON")
        raw = result.bytes()
        if not raw:
            return []
        rows: list[dict[str, Any]] = json.loads(raw)["data"]
        return rows

    def close(self) -> None:
        self._session.close()


def connect(url: str | None, chdb_path: Path) -> ClickHouseClient:
    """A server client when `url` is set (clickhouse://host:port), else embedded chDB."""
    if url:
        if urlparse(url).scheme not in ("clickhouse", "tcp"):
            raise ValueError(f"ClickHouse URL must look like clickhouse://host:port, got {url!r}")
        return DriverClient(url)
    return ChdbClient(chdb_path)
