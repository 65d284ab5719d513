"""Storage behaviour shared by the chDB (unit) and ClickHouse server (integration) tests."""

from __future__ import annotations

import uuid

import pytest

from sinks import migrate
from sinks.store import EventSink, FaceSink
from sinks.types import ClickHouseClient
from tests import sink_records


def migrations_apply_once(client: ClickHouseClient, database: str) -> None:
    first = migrate.upgrade(client, database)
    assert [m.version for m in first] == [m.version for m in migrate.available()]
    assert migrate.upgrade(client, database) == []
    tables = {
        r["name"]
        for r in client.query(f"SELECT name FROM system.tables WHERE database = '{database}'")
    }
    assert {"events", "faces", "descriptors", "schema_migrations"} <= tables


def redelivered_event_is_stored_once(client: ClickHouseClient, database: str) -> None:
    account = str(uuid.uuid4())
    event = sink_records.event(account, faces=2)
    event_id = event["context"]["event_id"]
    first = EventSink(client, database)
    first.add(event)
    first.add(event)  # redelivered within a batch
    assert first.flush() == 1
    first.add(event)  # redelivered after the flush
    assert first.flush() == 0
    restarted = EventSink(client, database)  # a new process does not remember: FINAL dedups
    restarted.add(event)
    assert restarted.flush() == 1
    rows = client.query(
        f"SELECT event_id, face_count, best_match_face_id, latency_ms FROM {database}.events FINAL "
        f"WHERE event_id = '{event_id}'"
    )
    assert len(rows) == 1
    assert rows[0]["face_count"] == 2 and list(rows[0]["best_match_face_id"]) == ["f1", "f1"]
    assert abs(float(rows[0]["latency_ms"]) - 250.0) < 1.0
    descriptors = client.query(
        f"SELECT face_index, length(descriptor) AS n FROM {database}.descriptors FINAL "
        f"WHERE owner_id = '{event_id}' ORDER BY face_index"
    )
    assert [(int(r["face_index"]), int(r["n"])) for r in descriptors] == [(0, 128), (1, 128)]


def face_upsert_and_tombstone(client: ClickHouseClient, database: str) -> None:
    account, face_id = str(uuid.uuid4()), str(uuid.uuid4())
    sink = FaceSink(client, database)
    sink.add((face_id, sink_records.face(account, face_id)))
    assert sink.flush() == 1
    sink.add((face_id, None))
    assert sink.flush() == 1
    rows = client.query(f"SELECT deleted FROM {database}.faces FINAL WHERE face_id = '{face_id}'")
    assert [int(r["deleted"]) for r in rows] == [1]


HOSTILE = [
    "it's",
    "back\\slash\\",
    "'); DROP TABLE {table}; --",
    "\\'; SELECT 1; --",
    '"double" `back`',
    "%(account)s %s %%",
    "new\nline\ttab\r\0nul",
    "ünïcødé 😀",
]


def hostile_values_round_trip(client: ClickHouseClient, database: str) -> None:
    """Values bound to placeholders arrive as data, whatever they hold; a string that is not
    valid UTF-8 (a lone surrogate: the API refuses it earlier) is refused, not mangled."""
    table = f"{database}.faces"
    values = [value.replace("{table}", table) for value in HOSTILE]
    sink = FaceSink(client, database)
    for value in values:
        face = sink_records.face(str(uuid.uuid4()), value)
        sink.add((value, face | {"user_data": value}))
    assert sink.flush() == len(values)
    for value in values:
        rows = client.query(
            f"SELECT face_id, user_data, %(value)s AS echo FROM {table} FINAL "
            "WHERE face_id = %(value)s AND user_data = %(value)s",
            {"value": value},
        )
        assert rows == [{"face_id": value, "user_data": value, "echo": value}]
    (count,) = client.query(f"SELECT count() AS n FROM {table} FINAL")
    assert int(count["n"]) >= len(values)  # the table is still there
    with pytest.raises(ValueError):
        client.query("SELECT %(value)s AS echo", {"value": "lone \udc80 surrogate"})
    # A subnormal float is no literal ClickHouse 18.16 parses: it binds as 0 (float32 has none).
    (row,) = client.query("SELECT %(tiny)s AS tiny", {"tiny": 2.2250738585e-313})
    assert float(row["tiny"]) == 0.0
    with pytest.raises(ValueError):
        client.query("SELECT %(nan)s AS nan", {"nan": float("nan")})
