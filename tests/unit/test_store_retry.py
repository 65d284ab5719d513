"""The store stage against a scripted ClickHouse: outages are retried until the batch is stored,
refused rows are isolated and dead-lettered, a bug stops the worker before the batch is
acknowledged. Also chDB refusing what the server refuses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import schemas
from sinks.clickhouse import connect, hide_password
from sinks.migrate import upgrade
from sinks.store import EventSink
from sinks.types import Params, Row, RowRefused, RowsRefused, StorageUnavailable
from streams.control.monitoring import Monitor
from streams.settings import LiveSettings, Settings, StorageSettings
from streams.worker.store import StoreAgent
from tests import sink_records

DB = "facestream"
EVENT = schemas.codec("Event")


class ScriptedClickHouse:
    """A ClickHouseClient double: `down` inserts fail as an outage would, then it works; a face
    index over UInt16 is refused as the native driver refuses it."""

    def __init__(self, down: int = 0) -> None:
        self.down = down
        self.attempts = 0
        self.rows: dict[str, list[Row]] = {}
        self.url = "clickhouse://scripted"

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        self.attempts += 1
        if self.down:
            self.down -= 1
            raise StorageUnavailable("Connection refused")
        indexes = [r["face_index"] for r in rows if "face_index" in r]
        indexes += [i for r in rows for i in r.get("face_indexes", [])]
        if any(i > 65535 for i in indexes):
            raise RowRefused("Column face_index: ushort format requires 0 <= number <= 65535")
        self.rows.setdefault(table.split(".")[1], []).extend(rows)

    def stored(self, table: str) -> list[str]:
        key = "owner_id" if table == "descriptors" else "event_id"
        return sorted(row[key] for row in self.rows.get(table, []))

    def execute(self, sql: str, params: Params | None = None) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Points:
    """An InfluxWriter double: the points the monitor writes."""

    def __init__(self) -> None:
        self.points: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.dropped = self.written = 0

    def add(self, measurement: str, tags: dict[str, str], fields: dict[str, Any]) -> None:
        self.points.append((measurement, tags, fields))

    def flush(self) -> int:
        return len(self.points)

    def fields(self, measurement: str, **tags: str) -> list[dict[str, Any]]:
        return [f for m, t, f in self.points if m == measurement and tags.items() <= t.items()]


class FakePipeline:
    """What a StoreAgent uses of a Pipeline, its own port; dead letters are built by the runner's
    real function."""

    def __init__(self) -> None:
        self.port = self
        storage = StorageSettings(retry_initial_s=0.001, retry_max_s=0.004)
        self.settings = Settings(storage=storage)
        self.monitor = Monitor(LiveSettings(self.settings))
        self.monitor.writer = self.writer = Points()  # type: ignore[assignment]
        self.sent: list[tuple[str, bytes | None]] = []
        self.delivered = 0  # sends whose delivery was awaited

    async def send(self, output: str, key: str | None, value: bytes | None) -> Awaitable[None]:
        self.sent.append((output, value))
        return self._delivery()

    async def _delivery(self) -> None:
        self.delivered += 1

    def letters(self) -> list[dict[str, Any]]:
        codec = schemas.codec("DeadLetter")
        return [codec.decode(v) for topic, v in self.sent if topic == "dead_letters" and v]

    def stage_point(self) -> dict[str, Any]:
        asyncio.run(self.monitor.flush())
        (fields,) = self.writer.fields("facestream_stage", stage="store_events")
        return fields


def message(value: bytes, offset: int) -> SimpleNamespace:
    meta = SimpleNamespace(topic="t.events", partition=0, offset=offset, acked=False)
    return SimpleNamespace(key=None, value=value, message=meta)


def events(count: int, bad: Sequence[int] = ()) -> tuple[list[Any], list[str]]:
    """Event messages; those at `bad` have a face index of 70000. Also their event ids."""
    records = [sink_records.event(str(uuid.uuid4()), faces=2) for _ in range(count)]
    for i in bad:
        records[i]["faces"][1]["geometry"]["index"] = 70000
    return [message(EVENT.encode(r), i) for i, r in enumerate(records)], [
        r["context"]["event_id"] for r in records
    ]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def agent(
    pipeline: FakePipeline, client: ScriptedClickHouse, executor: ThreadPoolExecutor
) -> StoreAgent:
    return StoreAgent(
        pipeline,  # type: ignore[arg-type]
        "store_events",
        EventSink(client, DB),
        lambda event: EVENT.decode(event.value),
        lambda item: item["context"],
        executor,
    )


def test_an_outage_is_retried_until_the_batch_is_stored_once(
    executor: ThreadPoolExecutor,
) -> None:
    client, pipeline = ScriptedClickHouse(down=3), FakePipeline()
    batch, ids = events(5)
    asyncio.run(agent(pipeline, client, executor).store(batch))
    assert client.stored("events") == sorted(ids)
    assert client.stored("descriptors") == sorted(ids * 2)
    assert client.attempts == 3 + 2  # three refused connections, then one insert per table
    point = pipeline.stage_point()
    assert (point["flush_failures"], point["flush_retries"], point["rows_refused"]) == (3, 3, 0)
    assert (point["processed"], point["errors"]) == (5, 0)
    assert pipeline.letters() == []


def test_a_refused_row_is_dead_lettered_and_the_rest_stored(executor: ThreadPoolExecutor) -> None:
    client, pipeline = ScriptedClickHouse(), FakePipeline()
    batch, ids = events(9, bad=[6])
    asyncio.run(agent(pipeline, client, executor).store(batch))
    good = sorted(ids[:6] + ids[7:])
    assert client.stored("events") == good
    assert client.stored("descriptors") == sorted(good * 2)
    (letter,) = pipeline.letters()
    assert (letter["stage"], letter["error_code"], letter["offset"]) == (
        "store_events",
        "storage_refused",
        6,
    )
    assert letter["event_id"] == ids[6]
    assert "0 <= number <= 65535" in letter["error_message"]
    assert letter["payload"] == batch[6].value
    assert pipeline.delivered == 1  # the letter is delivered before the batch is acked
    point = pipeline.stage_point()
    assert (point["processed"], point["errors"], point["rows_refused"]) == (8, 1, 1)
    assert (point["flush_failures"], point["flush_retries"]) == (0, 0)
    # The sink holds nothing back: the next batch is stored as usual.
    more, more_ids = events(3)
    asyncio.run(agent(pipeline, client, executor).store(more))
    assert client.stored("events") == sorted(good + more_ids)


def test_an_outage_in_the_middle_of_isolation_resumes_without_losing_the_refusal() -> None:
    client = ScriptedClickHouse()
    sink = EventSink(client, DB)
    batch, ids = events(4, bad=[0])
    for event in batch:
        sink.add(EVENT.decode(event.value), tag=event.message.offset)
    real_insert = client.insert

    def fail_once_inside_isolation(table: str, rows: Sequence[Row]) -> None:
        if client.attempts == 3:  # batch refused, first half refused, now the second half
            client.attempts += 1
            raise StorageUnavailable("Connection reset by peer")
        real_insert(table, rows)

    client.insert = fail_once_inside_isolation  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        sink.flush()
    with pytest.raises(RowsRefused) as refused:
        sink.flush()
    assert refused.value.written == 3
    assert [r.tag for r in refused.value.refused] == [0]
    assert client.stored("events") == sorted(ids[1:])
    assert sink.flush() == 0


def test_an_unexpected_error_exits_70_before_the_batch_is_acknowledged(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, pipeline = ScriptedClickHouse(), FakePipeline()
    store = agent(pipeline, client, executor)
    batch, _ = events(2)
    acked: list[int] = []

    class Stream:
        async def take_events(self, size: int, within: float) -> AsyncIterator[list[Any]]:
            try:
                yield batch
            finally:  # as Faust's take_events: the batch is acked however its body ends
                acked.extend(e.message.offset for e in batch if not e.message.acked)

    def bug(*args: Any) -> None:
        raise AttributeError("a bug")

    class Exited(BaseException):
        pass

    def exit_(code: int) -> None:
        raise Exited(code, list(acked))  # what was acknowledged when the process ended

    monkeypatch.setattr(store.sink, "flush", bug)
    monkeypatch.setattr("os._exit", exit_)
    with pytest.raises(Exited) as exited:
        asyncio.run(store.run(Stream()))  # type: ignore[arg-type]
    assert exited.value.args == (70, [])


def test_monitoring_exports_the_dropped_points() -> None:
    pipeline = FakePipeline()
    pipeline.writer.dropped, pipeline.writer.written = 7, 40
    asyncio.run(pipeline.monitor.flush())
    (fields,) = pipeline.writer.fields("facestream_monitoring")
    assert (fields["dropped_points"], fields["written_points"]) == (7, 40)
    asyncio.run(pipeline.monitor.flush())  # unchanged: not written again
    assert len(pipeline.writer.fields("facestream_monitoring")) == 1


def test_chdb_refuses_an_out_of_range_face_index_like_the_server(tmp_path: Path) -> None:
    client = connect(None, tmp_path / "chdb")
    upgrade(client, DB)
    sink = EventSink(client, DB)
    batch, ids = events(3, bad=[1])
    for event in batch:
        sink.add(EVENT.decode(event.value), tag=event.message.offset)
    with pytest.raises(RowsRefused) as refused:
        sink.flush()
    assert refused.value.written == 2
    assert [r.tag for r in refused.value.refused] == [1]
    assert "70000 is out of [0, 65535]" in refused.value.refused[0].reason
    stored = client.query(f"SELECT event_id FROM {DB}.events FINAL ORDER BY event_id")
    assert [r["event_id"] for r in stored] == sorted([ids[0], ids[2]])
    indexes = client.query(f"SELECT max(face_index) AS top FROM {DB}.descriptors")
    assert int(indexes[0]["top"]) == 1  # nothing wrapped around to 4464
    client.close()


def test_a_logged_url_hides_the_password() -> None:
    url = "clickhouse://writer:s3cret@db.example:9000/facestream"
    assert hide_password(url) == "clickhouse://writer:***@db.example:9000/facestream"
    assert hide_password("clickhouse://127.0.0.1:19000") == "clickhouse://127.0.0.1:19000"
