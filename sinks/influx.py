"""InfluxDB line-protocol writer for monitoring points, version 1 or 2.

Monitoring must never block or break the pipeline: a failed write drops its points, counts
them in `dropped`, and the next flush tries again with new points.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

log = logging.getLogger(__name__)

Fields = dict[str, float | int]


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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def line(measurement: str, tags: dict[str, str], fields: Fields, ts_ns: int) -> str:
    tag_part = "".join(f",{_escape(k)}={_escape(v)}" for k, v in sorted(tags.items()))
    field_part = ",".join(
        f"{_escape(k)}={v}i"
        if isinstance(v, int) and not isinstance(v, bool)
        else f"{_escape(k)}={v!r}"
        for k, v in fields.items()
    )
    return f"{_escape(measurement)}{tag_part} {field_part} {ts_ns}"


def detect_version(target: InfluxTarget, timeout: float = 2.0) -> int:
    """InfluxDB answers /ping with its version in a header on both 1.x and 2.x."""
    with urllib.request.urlopen(f"{target.base_url}/ping", timeout=timeout) as response:
        version = response.headers.get("X-Influxdb-Version", "1")
    return 2 if version.lstrip("v").startswith("2") else 1


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
        self._lines.append(line(measurement, tags, fields, ts_ns or time.time_ns()))

    def flush(self) -> int:
        if not self._lines:
            return 0
        lines, self._lines = self._lines, []
        try:
            request = self._request("\n".join(lines).encode())
            with urllib.request.urlopen(request, timeout=self._timeout):
                pass
        except (OSError, urllib.error.URLError) as exc:
            self.dropped += len(lines)
            log.warning(
                "InfluxDB write failed, %d points dropped (%d in all): %s",
                len(lines),
                self.dropped,
                exc,
            )
            return 0
        self.written += len(lines)
        return len(lines)

    def _request(self, body: bytes) -> urllib.request.Request:
        t = self.target
        if self._version is None:
            self._version = detect_version(t, self._timeout)
        if self._version == 2:
            query = urlencode(
                {"org": t.organization or "", "bucket": t.bucket or "", "precision": "ns"}
            )
            headers = {"Authorization": f"Token {t.token or ''}"}
            return urllib.request.Request(f"{t.base_url}/api/v2/write?{query}", body, headers)
        query = urlencode({"db": t.database, "precision": "ns"})
        return urllib.request.Request(f"{t.base_url}/write?{query}", body)
