"""A task's state as every API process shows it: an unfinished one whose process stopped writing
it for STALE_BEATS heartbeats is interrupted; a finished one stays as it ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.records import TaskState
from streams.kafka import topics
from streams.kafka.task_states import STALE_BEATS, TaskBoard, shown

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HEARTBEAT_S = 2.0


def state(status: str, seconds_ago: float) -> TaskState:
    return {
        "task_id": "to-v2",
        "kind": "reextract",
        "version": 2,
        "status": status,
        "total": 100,
        "processed": 40,
        "errors": 1,
        "not_reextractable": 2,
        "error": None,
        "owner": "host:123",
        "started_at": NOW - timedelta(minutes=5),
        "updated_at": NOW - timedelta(seconds=seconds_ago),
    }


@pytest.mark.parametrize("status", ["starting", "running"])
def test_an_unfinished_task_without_heartbeats_is_interrupted(status: str) -> None:
    limit = STALE_BEATS * HEARTBEAT_S
    assert shown(state(status, limit), HEARTBEAT_S, NOW)["status"] == status
    late = shown(state(status, limit + 0.01), HEARTBEAT_S, NOW)
    assert late["status"] == "interrupted"
    assert "host:123" in str(late["error"]) and "same task_id" in str(late["error"])
    assert (late["processed"], late["errors"], late["not_reextractable"]) == (40, 1, 2)


@pytest.mark.parametrize("status", ["done", "stopped", "failed"])
def test_a_finished_task_stays_as_it_ended(status: str) -> None:
    assert shown(state(status, 3600), HEARTBEAT_S, NOW) == state(status, 3600)


def test_the_board_keeps_the_latest_state_and_forgets_a_tombstone() -> None:
    board = TaskBoard()
    board.apply("to-v2", state("running", 0), 1)
    board.apply("to-v2", state("done", 0), 2)
    assert board.states["to-v2"]["status"] == "done"
    board.apply("to-v2", None, 3)
    assert board.states == {}


def test_the_state_survives_its_topic_contract() -> None:
    decoded = topics.TASKS.decode(topics.TASKS.encode(state("running", 1)))
    assert decoded == state("running", 1)
    assert topics.TASKS.compacted
