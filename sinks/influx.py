"""InfluxDB line-protocol writer for monitoring points, version 1 or 2.

Monitoring must never block or break the pipeline: a failed write drops its points, counts
them in `dropped`, and the next flush tries again with new points. `check` is the strict
counterpart, for vetting a connection setting before it is used.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

log = logging.getLogger(__name__)

Fields = dict[str, float | int | bool | str]


class InfluxCheckError(RuntimeError):
    """The target is unreachable or refuses the configured database, token, org or bucket."""


@dataclass(frozen=True)
class InfluxTarget:
    host: str
    port: int
    use_ssl: bool = False
    database: str = "facestream"  # version 1
    organization: str | None = None  # version 2
    bucket: str | None = None
    token: str | None = None
    version: int | None = None  # None = ask the server

    @property
    def base_url(self) -> str:
        return f"{'https' if self.use_ssl else 'http'}://{self.host}:{self.port}"


# InfluxDB unescapes only these sequences; a backslash before anything else stays literal,
# so backslashes themselves are not escaped outside string field values.
def _escape_name(text: str) -> str:
    return text.replace(",", "\\,").replace(" ", "\\ ")


def _escape_key(text: str) -> str:
    return _escape_name(text).replace("=", "\\=")


def _field_value(value: float | int | bool | str) -> str | None:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(float(value)) if math.isfinite(value) else None  # no NaN/inf in the protocol


def line(measurement: str, tags: dict[str, str], fields: Fields, ts_ns: int) -> str:
    """One line of line protocol; ValueError if no field is representable."""
    # InfluxDB has no empty tags: a tag without a value is left out, as the server would.
    tag_part = "".join(
        f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if k and v
    )
    values = {k: _field_value(v) for k, v in fields.items()}
    field_part = ",".join(f"{_escape_key(k)}={v}" for k, v in values.items() if v is not None)
    if not field_part:
        raise ValueError(f"{measurement}: no representable field in {fields}")
    return f"{_escape_name(measurement)}{tag_part} {field_part} {ts_ns}"


def detect_version(target: InfluxTarget, timeout: float = 2.0) -> int:
    """InfluxDB answers /ping with its version in a header on both 1.x and 2.x."""
    with urllib.request.urlopen(f"{target.base_url}/ping", timeout=timeout) as response:
        version = response.headers.get("X-Influxdb-Version", "1")
    return 2 if version.lstrip("v").startswith("2") else 1


def _write_request(target: InfluxTarget, version: int, body: bytes) -> urllib.request.Request:
    if version == 2:
        query = urlencode(
            {"org": target.organization or "", "bucket": target.bucket or "", "precision": "ns"}
        )
        headers = {"Authorization": f"Token {target.token or ''}"}
        return urllib.request.Request(f"{target.base_url}/api/v2/write?{query}", body, headers)
    query = urlencode({"db": target.database, "precision": "ns"})
    return urllib.request.Request(f"{target.base_url}/write?{query}", body)


def _reason(exc: Exception) -> str:
    """The server's own message for an HTTP error ({"message": ...} on 2.x, {"error"} on 1.x)."""
    if not isinstance(exc, urllib.error.HTTPError):
        return str(exc)
    try:
        body = json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        body = {}
    message = (body.get("message") or body.get("error")) if isinstance(body, dict) else None
    return f"HTTP {exc.code}: {message or exc.reason}"


# A non-HTTP service on the port raises HTTPException, which is not an OSError.
_FAILURES = (OSError, http.client.HTTPException)


def _failed(target: InfluxTarget, exc: Exception) -> InfluxCheckError:
    return InfluxCheckError(f"InfluxDB at {target.base_url}: {_reason(exc)}")


def check(target: InfluxTarget, timeout: float = 2.0) -> None:
    """Raise InfluxCheckError unless `target` would accept writes as configured."""
    try:
        version = target.version or detect_version(target, timeout)
    except _FAILURES as exc:
        raise _failed(target, exc) from exc
    if version == 2:
        _check_v2(target, timeout)
    else:
        _check_v1(target, timeout)


def _check_v2(target: InfluxTarget, timeout: float) -> None:
    missing = [n for n in ("organization", "bucket", "token") if not getattr(target, n)]
    if missing:
        raise InfluxCheckError(f"InfluxDB 2 at {target.base_url} needs {', '.join(missing)}")
    # An empty write passes the token, org, bucket and write-permission checks in that order;
    # only then does InfluxDB 2 answer 400 "writing requires points".
    try:
        with urllib.request.urlopen(_write_request(target, 2, b""), timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 400:
            return
        raise InfluxCheckError(
            f"InfluxDB 2 at {target.base_url} refuses org {target.organization!r}, "
            f"bucket {target.bucket!r} with this token: {_reason(exc)}"
        ) from exc
    except _FAILURES as exc:
        raise _failed(target, exc) from exc


def _check_v1(target: InfluxTarget, timeout: float) -> None:
    query = urlencode({"q": "SHOW DATABASES"})
    try:
        with urllib.request.urlopen(f"{target.base_url}/query?{query}", timeout=timeout) as r:
            result = json.load(r)["results"][0]
    except _FAILURES as exc:
        raise _failed(target, exc) from exc
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InfluxCheckError(f"InfluxDB at {target.base_url}: unexpected answer") from exc
    names = {row[0] for series in result.get("series", []) for row in series.get("values", [])}
    if target.database not in names:
        raise InfluxCheckError(
            f"InfluxDB at {target.base_url} has no database {target.database!r}"
            + (f": {result['error']}" if "error" in result else "")
        )


class InfluxWriter:
    """Buffers points (`add`) and posts them in one request (`flush`)."""

    def __init__(self, target: InfluxTarget, max_buffer: int = 100_000, timeout: float = 2.0):
        self.target = target
        self.dropped = 0
        self.written = 0
        self._lines: list[str] = []
        self._max_buffer = max_buffer
        self._timeout = timeout
        self._version = target.version

    def add(
        self, measurement: str, tags: dict[str, str], fields: Fields, ts_ns: int | None = None
    ) -> None:
        if len(self._lines) >= self._max_buffer:
            self.dropped += 1
            return
        try:
            self._lines.append(
                line(measurement, tags, fields, time.time_ns() if ts_ns is None else ts_ns)
            )
        except ValueError as exc:
            self.dropped += 1
            log.debug("point dropped: %s", exc)

    def flush(self) -> int:
        if not self._lines:
            return 0
        lines, self._lines = self._lines, []
        try:
            if self._version is None:
                self._version = detect_version(self.target, self._timeout)
            request = _write_request(self.target, self._version, "\n".join(lines).encode())
            with urllib.request.urlopen(request, timeout=self._timeout):
                pass
        except _FAILURES as exc:
            self.dropped += len(lines)
            log.warning(
                "InfluxDB write failed, %d points dropped (%d in all): %s",
                len(lines),
                self.dropped,
                _reason(exc),
            )
            return 0
        self.written += len(lines)
        return len(lines)
