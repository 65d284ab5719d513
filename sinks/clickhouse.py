"""ClickHouse clients: clickhouse-driver against a server, chDB in-process when none is set."""

from __future__ import annotations

import json
import logging
import math
import re
import struct
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sinks.types import ClickHouseClient, Params, ParamValue, Row, RowRefused, StorageUnavailable

# ClickHouse error codes that mean the data itself is refused: sending it again cannot succeed.
# Any other error (network, timeout, memory, too many parts, a missing table) is retried.
DATA_ERROR_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 349, 376, 441})


def hide_password(url: str) -> str:
    """The URL as a log may show it: user:***@host."""
    parsed = urlparse(url)
    if not parsed.password:
        return url
    netloc = f"{parsed.username or ''}:***@{parsed.hostname}"
    return parsed._replace(netloc=netloc + (f":{parsed.port}" if parsed.port else "")).geturl()


def checked(params: Params | None) -> dict[str, ParamValue] | None:
    """The values a query binds, refused alike by both clients when they cannot be literals."""
    if params is None:
        return None
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(f"parameter {name}: cannot bind a {type(value).__name__}")
        if isinstance(value, str):
            value.encode()  # a lone surrogate: UnicodeEncodeError (a ValueError), not mangled
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"parameter {name}: {value} is not a finite number")
    # ClickHouse 18.16 cannot parse a subnormal literal (2.2e-313): below float32's range anyway.
    return {
        name: 0.0 if isinstance(value, float) and abs(value) < sys.float_info.min else value
        for name, value in params.items()
    }


def bind(sql: str, params: Params | None) -> str:
    """`sql` with its `%(name)s` placeholders filled the way clickhouse-driver fills them for
    DriverClient (its own escaping), for chDB: ClickHouse 18.16 has no server-side parameters,
    so one SQL text serves both clients."""
    from clickhouse_driver.util.escape import escape_params

    values = checked(params)
    return sql if values is None else sql % escape_params(values, None)


def _error_code(exc: Exception) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    found = re.match(r"\s*Code: (\d+)", str(exc))  # chDB says it only in the message
    return int(found.group(1)) if found else None


class DriverClient:
    """A ClickHouse server over the native protocol (works from 18.16 to current releases)."""

    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client

        # The driver logs every failed connect with a traceback; the store stage logs an outage
        # once, when it starts, and once when it ends.
        logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
        parsed = urlparse(url)
        self.url = hide_password(url)
        self._client = Client(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 9000,
            user=parsed.username or "default",
            password=parsed.password or "",
            connect_timeout=5,
            send_receive_timeout=60,
        )

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._client.execute(sql, checked(params))

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        from clickhouse_driver import errors

        columns = list(rows[0])
        try:
            self._client.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES",
                [tuple(row[c] for c in columns) for row in rows],
            )
        # The driver encodes the rows itself: a value that does not fit its column fails here.
        except (errors.TypeMismatchError, errors.TooLargeStringSize, struct.error) as exc:
            raise RowRefused(str(exc)) from exc
        except (TypeError, ValueError, OverflowError, KeyError) as exc:
            raise RowRefused(repr(exc)) from exc
        except (errors.Error, OSError, EOFError) as exc:
            if _error_code(exc) in DATA_ERROR_CODES:
                raise RowRefused(str(exc)) from exc
            raise StorageUnavailable(str(exc)) from exc

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        data, types = self._client.execute(sql, checked(params), with_column_types=True)
        names = [name for name, _ in types]
        return [dict(zip(names, row, strict=True)) for row in data]

    def close(self) -> None:
        self._client.disconnect()


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return int(value.timestamp())  # DateTime columns accept epoch seconds
    raise TypeError(f"cannot store {type(value).__name__} in ClickHouse")


def _int_range(unsigned: str, bits: int) -> tuple[int, int]:
    return (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _check_integers(row: Row, bounds: dict[str, tuple[int, int]]) -> None:
    for column, (low, high) in bounds.items():
        value = row.get(column)
        for number in value if isinstance(value, list) else [value]:
            if isinstance(number, int) and not low <= number <= high:
                raise RowRefused(f"column {column}: {number} is out of [{low}, {high}]")


class ChdbClient:
    """Embedded ClickHouse (chDB): one process owns the folder while it is open."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.url = f"chdb://{path}"
        self._session = session.Session(str(path))
        self._int_columns: dict[str, dict[str, tuple[int, int]]] = {}

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._session.query(bind(sql, params))

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        bounds = self._integer_bounds(table)
        for row in rows:
            _check_integers(row, bounds)
        try:
            body = "\n".join(json.dumps(row, default=_json_default) for row in rows)
            self._session.query(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}")
        except (TypeError, ValueError) as exc:
            raise RowRefused(repr(exc)) from exc
        except RuntimeError as exc:  # ChdbError
            if _error_code(exc) in DATA_ERROR_CODES:
                raise RowRefused(str(exc)) from exc
            raise StorageUnavailable(str(exc)) from exc

    def _integer_bounds(self, table: str) -> dict[str, tuple[int, int]]:
        """The integer columns of `table` (plain or in arrays) and their ranges: ClickHouse
        wraps an out-of-range integer in JSON input silently, where the driver refuses it."""
        if table not in self._int_columns:
            database, name = table.split(".")
            columns = self.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = %(database)s AND table = %(table)s",
                {"database": database, "table": name},
            )
            self._int_columns[table] = {
                c["name"]: _int_range(found.group(1), int(found.group(2)))
                for c in columns
                if (found := re.fullmatch(r"(?:Array\()?(U?)Int(\d+)\)?", c["type"]))
            }
        return self._int_columns[table]

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        result = self._session.query(bind(sql, params), "JSON")
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
