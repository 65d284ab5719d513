"""The monitoring writer's InfluxDB 2 path, and `check`, against a stand-in server.

No InfluxDB 2 server can be installed here (Debian ships 1.6.7; no registry this project uses
has a 2.x server package), so `FakeInflux` is a real HTTP server that answers as InfluxDB's
documented API does for what the writer uses: /ping, and /api/v2/write with its token, org,
bucket and precision checks in the server's order, parsing line protocol as strictly as the
server. In 1.x mode it answers /ping, /write?db= and /query's SHOW DATABASES instead.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sinks.influx import InfluxCheckError, InfluxTarget, InfluxWriter, check, detect_version, line

ORG, BUCKET, TOKEN, READ_ONLY = "acme", "monitoring", "s3cret==", "read-only"
DATABASE = "facestream"

Value = float | int | bool | str


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, Value]
    ts: int | None


# --- line protocol, parsed the way InfluxDB's models package does -------------------------

_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"t": True, "T": True, "true": True, "True": True, "TRUE": True}
_BOOLS |= {"f": False, "F": False, "false": False, "False": False, "FALSE": False}


def _scan(text: str, i: int, stops: str) -> tuple[str, int]:
    """Up to the first stop character not preceded by a backslash."""
    start = i
    while i < len(text) and not (text[i] in stops and i > 0 and text[i - 1] != "\\"):
        i += 1
    return text[start:i], i


def _unescape(raw: str, chars: str) -> str:
    for c in chars:
        raw = raw.replace("\\" + c, c)
    return raw


def _value(raw: str) -> Value:
    if raw in _BOOLS:
        return _BOOLS[raw]
    if re.fullmatch(r"-?\d+i", raw) and -(2**63) <= int(raw[:-1]) < 2**63:
        return int(raw[:-1])
    if re.fullmatch(r"\d+u", raw) and int(raw[:-1]) < 2**64:
        return int(raw[:-1])
    if _FLOAT.fullmatch(raw) and math.isfinite(float(raw)):
        return float(raw)
    raise ValueError(f"invalid field value {raw!r}")


def _string(text: str, i: int) -> tuple[str, int]:
    """A double-quoted field value starting at text[i]; returns it and the index after it."""
    out, i = [], i + 1
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            i += 1
        out.append(text[i])
        i += 1
    if i >= len(text):
        raise ValueError("unterminated string field")
    return "".join(out), i + 1


def parse_line(text: str) -> Point:
    raw, i = _scan(text, 0, ", ")
    if not raw or i >= len(text):
        raise ValueError("missing measurement or fields")
    measurement, tags = _unescape(raw, ", "), {}
    while text[i] == ",":
        key, i = _scan(text, i + 1, "=, ")
        if not key or i >= len(text) or text[i] != "=":
            raise ValueError("missing tag key or '='")
        value, i = _scan(text, i + 1, ", ")
        if not value or i >= len(text):
            raise ValueError("missing tag value or fields")
        tags[_unescape(key, ", =")] = _unescape(value, ", =")
    fields: dict[str, Value] = {}
    while i < len(text) and ((text[i] == " " and not fields) or text[i] == ","):
        key, i = _scan(text, i + 1, "=, ")
        if not key or i >= len(text) or text[i] != "=":
            raise ValueError("missing field key or '='")
        if text[i + 1 : i + 2] == '"':
            fields[_unescape(key, ", =")], i = _string(text, i + 1)
        else:
            raw, i = _scan(text, i + 1, ", ")
            fields[_unescape(key, ", =")] = _value(raw)
    if not fields:
        raise ValueError("missing fields")
    if i == len(text):
        return Point(measurement, tags, fields, None)
    if text[i] != " " or not re.fullmatch(r"-?\d+", text[i + 1 :]):
        raise ValueError(f"bad timestamp {text[i:]!r}")
    return Point(measurement, tags, fields, int(text[i + 1 :]))


def parse_body(body: str) -> list[Point]:
    lines = (s for s in body.split("\n") if s.strip() and not s.startswith("#"))
    return [parse_line(s) for s in lines]


# --- the server ---------------------------------------------------------------------------


@dataclass
class State:
    version: str
    tokens: dict[str, bool] = field(default_factory=lambda: {TOKEN: True, READ_ONLY: False})
    buckets: dict[str, set[str]] = field(default_factory=lambda: {ORG: {BUCKET}})
    databases: set[str] = field(default_factory=lambda: {"_internal", DATABASE})
    points: dict[str, list[Point]] = field(default_factory=dict)  # by bucket or database


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output clean

    def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("X-Influxdb-Version", self.server.state.version)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ping":
            self._answer(204)
        elif url.path == "/query" and self._v1 and query.get("q") == "SHOW DATABASES":
            names = [[n] for n in sorted(self.server.state.databases)]
            series = {"name": "databases", "columns": ["name"], "values": names}
            self._answer(200, {"results": [{"statement_id": 0, "series": [series]}]})
        else:
            self._answer(404, {"code": "not found", "message": "path not found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if url.path == "/api/v2/write" and not self._v1:
            self._write_v2(query, body)
        elif url.path == "/write" and self._v1:
            if query.get("db") not in self.server.state.databases:
                self._answer(404, {"error": f'database not found: "{query.get("db")}"'})
            else:
                self._store(query["db"], body, lambda m: {"error": m})
        else:
            self._answer(404, {"code": "not found", "message": "path not found"})

    @property
    def _v1(self) -> bool:
        return self.server.state.version.lstrip("v").startswith("1")

    def _write_v2(self, query: dict[str, str], body: str) -> None:
        state = self.server.state
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        org, bucket = query.get("org"), query.get("bucket")
        if scheme != "Token" or token not in state.tokens:
            self._answer(401, {"code": "unauthorized", "message": "unauthorized access"})
        elif query.get("precision", "ns") not in ("ns", "us", "ms", "s"):
            self._answer(400, {"code": "invalid", "message": "invalid precision"})
        elif not bucket:
            self._answer(404, {"code": "not found", "message": "bucket not found"})
        elif not org:
            message = "Please provide either orgID or org"
            self._answer(400, {"code": "invalid", "message": message})
        elif org not in state.buckets:
            message = f'organization name "{org}" not found'
            self._answer(404, {"code": "not found", "message": message})
        elif bucket not in state.buckets[org]:
            self._answer(404, {"code": "not found", "message": f'bucket "{bucket}" not found'})
        elif not state.tokens[token]:
            message = "insufficient permissions for write"
            self._answer(403, {"code": "forbidden", "message": message})
        elif not body:
            self._answer(400, {"code": "invalid", "message": "writing requires points"})
        else:
            self._store(bucket, body, lambda m: {"code": "invalid", "message": m})

    def _store(self, where: str, body: str, error: Callable[[str], dict[str, str]]) -> None:
        try:
            points = parse_body(body)
        except ValueError as exc:
            self._answer(400, error(f"unable to parse points: {exc}"))
            return
        self.server.state.points.setdefault(where, []).extend(points)
        self._answer(204)


class _Server(ThreadingHTTPServer):
    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def serve(version: str) -> Iterator[tuple[State, int]]:
    server = _Server(State(version))
    # A short poll keeps shutdown() (one per test) from costing half a second.
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield server.state, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def influx2() -> Iterator[tuple[State, int]]:
    with serve("v2.7.11") as served:
        yield served


@pytest.fixture
def influx1() -> Iterator[tuple[State, int]]:
    with serve("1.8.10") as served:
        yield served


def v2_target(port: int, **changes: Any) -> InfluxTarget:
    settings = {"organization": ORG, "bucket": BUCKET, "token": TOKEN} | changes
    return InfluxTarget("127.0.0.1", port, **settings)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- line() -------------------------------------------------------------------------------


def test_line_escapes_names_keys_and_values_per_the_protocol() -> None:
    tags = {"host name": "a,b=c d", "empty": "", "path": "C:\\tmp"}
    fields: dict[str, Value] = {"n=1, x": 3, "ok": True, "off": False, "r": 0.5}
    fields["msg"] = 'say "hi" \\ bye'
    text = line("stage load,v2=x", tags, fields, 1_700_000_000_000_000_000)
    assert text == (
        "stage\\ load\\,v2=x,host\\ name=a\\,b\\=c\\ d,path=C:\\tmp "
        'n\\=1\\,\\ x=3i,ok=true,off=false,r=0.5,msg="say \\"hi\\" \\\\ bye" '
        "1700000000000000000"
    )
    del tags["empty"]  # InfluxDB has no empty tags
    assert parse_line(text) == Point("stage load,v2=x", tags, fields, 1_700_000_000_000_000_000)


def test_non_finite_floats_are_left_out_and_a_point_without_fields_is_dropped() -> None:
    assert line("m", {}, {"a": math.nan, "b": 1.0, "c": math.inf}, 5) == "m b=1.0 5"
    with pytest.raises(ValueError):
        line("m", {}, {"a": math.nan}, 5)
    writer = InfluxWriter(InfluxTarget("127.0.0.1", closed_port(), version=2))
    writer.add("m", {}, {"a": -math.inf})
    assert writer.dropped == 1
    assert writer.flush() == 0  # nothing was buffered, so nothing was sent


@pytest.mark.parametrize(
    "bad",
    ["m", "m f", "m f=", "m,t f=1", "m,t= f=1", "m f=1 12a", "m f=1.2.3", "m f=1i2", 'm s="x'],
)
def test_the_stand_in_rejects_malformed_lines(influx2: tuple[State, int], bad: str) -> None:
    state, port = influx2
    url = f"http://127.0.0.1:{port}/api/v2/write?org={ORG}&bucket={BUCKET}&precision=ns"
    request = urllib.request.Request(url, bad.encode(), {"Authorization": f"Token {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=2)
    assert refused.value.code == 400
    assert json.load(refused.value)["code"] == "invalid"
    assert not state.points


# --- writing ------------------------------------------------------------------------------


def test_version_is_detected_from_ping(
    influx2: tuple[State, int], influx1: tuple[State, int]
) -> None:
    assert detect_version(InfluxTarget("127.0.0.1", influx2[1])) == 2
    assert detect_version(InfluxTarget("127.0.0.1", influx1[1])) == 1


def test_points_land_in_the_bucket(influx2: tuple[State, int]) -> None:
    state, port = influx2
    writer = InfluxWriter(v2_target(port))  # version None: detected on the first flush
    writer.add("facestream_stage", {"stage": "detect", "worker": "h-1"}, {"processed": 7}, 10)
    writer.add("facestream_stage", {"stage": "match"}, {"latency_ms_max": 2.5, "errors": 0}, 20)
    assert writer.flush() == 2
    assert (writer.written, writer.dropped) == (2, 0)
    assert state.points[BUCKET] == [
        Point("facestream_stage", {"stage": "detect", "worker": "h-1"}, {"processed": 7}, 10),
        Point("facestream_stage", {"stage": "match"}, {"latency_ms_max": 2.5, "errors": 0}, 20),
    ]
    assert isinstance(state.points[BUCKET][0].fields["processed"], int)


def test_points_land_in_the_database_on_influxdb_1(influx1: tuple[State, int]) -> None:
    state, port = influx1
    writer = InfluxWriter(InfluxTarget("127.0.0.1", port, database=DATABASE))
    writer.add("m", {"stage": "store"}, {"processed": 1}, 30)
    assert writer.flush() == 1
    assert state.points[DATABASE] == [Point("m", {"stage": "store"}, {"processed": 1}, 30)]


# A setting InfluxDB 2 refuses, and the words of its refusal.
REFUSED: list[tuple[dict[str, str], str]] = [
    ({"token": "wrong"}, "unauthorized access"),
    ({"bucket": "nope"}, 'bucket "nope" not found'),
    ({"organization": "other"}, 'organization name "other" not found'),
    ({"token": READ_ONLY}, "insufficient permissions for write"),
]


@pytest.mark.parametrize(("change", "message"), REFUSED)
def test_refused_writes_are_dropped_and_counted_without_raising(
    influx2: tuple[State, int],
    caplog: pytest.LogCaptureFixture,
    change: dict[str, str],
    message: str,
) -> None:
    state, port = influx2
    writer = InfluxWriter(v2_target(port, **change))
    for n in range(3):
        writer.add("m", {}, {"n": n})
    with caplog.at_level(logging.WARNING, logger="sinks.influx"):
        assert writer.flush() == 0
    assert (writer.written, writer.dropped) == (0, 3)
    assert message in caplog.text  # the server's reason, not just the status code
    assert not state.points


def test_a_non_http_service_on_the_port_drops_without_raising() -> None:
    class Garbage(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            self.request.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    with socketserver.TCPServer(("127.0.0.1", 0), Garbage) as server:
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        writer = InfluxWriter(InfluxTarget("127.0.0.1", server.server_address[1], version=1))
        writer.add("m", {}, {"n": 1})
        assert writer.flush() == 0
        server.shutdown()
    assert writer.dropped == 1


# --- check() ------------------------------------------------------------------------------


def test_check_accepts_a_working_setting_without_writing(
    influx2: tuple[State, int], influx1: tuple[State, int]
) -> None:
    check(v2_target(influx2[1]))
    check(v2_target(influx2[1], version=2))
    check(InfluxTarget("127.0.0.1", influx1[1], database=DATABASE))
    assert not influx2[0].points and not influx1[0].points


@pytest.mark.parametrize(("change", "message"), [*REFUSED, ({"token": None}, "needs token")])
def test_check_names_what_influxdb_2_refuses(
    influx2: tuple[State, int], change: dict[str, str | None], message: str
) -> None:
    with pytest.raises(InfluxCheckError, match=re.escape(message)):
        check(v2_target(influx2[1], **change))


def test_check_refuses_a_missing_influxdb_1_database(influx1: tuple[State, int]) -> None:
    with pytest.raises(InfluxCheckError, match="no database 'other'"):
        check(InfluxTarget("127.0.0.1", influx1[1], database="other"))


@pytest.mark.parametrize("version", [None, 1, 2])
def test_check_refuses_an_unreachable_server(version: int | None) -> None:
    port = closed_port()
    with pytest.raises(InfluxCheckError, match=f"127.0.0.1:{port}"):
        check(v2_target(port, version=version), timeout=1)
