"""Settings sources and the config topic's state, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import schemas
from streams.control.config import (
    ConfigError,
    ConfigState,
    hide_secrets,
    parse_assignments,
    validated,
)
from streams.control.reload import apply_logging_level
from streams.settings import CONFIG_FILE_ENV, LiveSettings, Settings


def change(section: str, values: object) -> bytes:
    return schemas.codec("ConfigChange").encode(
        {
            "section": section,
            "values_json": json.dumps(values),
            "author": "t",
            "changed_at": datetime.now(UTC),
        }
    )


def test_sources_in_order_file_then_environment_then_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "facestream.yml"
    file.write_text("match: {limit: 4, threshold_v1: 0.3}\ndetection: {max_faces: 5}\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(file))
    monkeypatch.setenv("FACESTREAM_MATCH__LIMIT", "6")
    from_file_and_env = Settings()
    assert from_file_and_env.match.limit == 6  # environment over file
    assert from_file_and_env.match.threshold_v1 == 0.3  # file over default
    assert from_file_and_env.detection.max_faces == 5
    state = ConfigState()
    state.apply(b"match", change("match", {"limit": 9}))
    assert state.settings().match.limit == 9  # topic over environment
    assert state.settings().match.threshold_v1 == 0.3  # the rest of the section stays


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, "/nowhere/facestream.yml")
    with pytest.raises(FileNotFoundError, match=r"/nowhere/facestream\.yml"):
        Settings()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00garbage", "magic byte"),
        (change("match", {"limit": "many"}), "limit"),
        (change("match", {"limit": 1000}), "less than or equal to 100"),
        (change("match", {"nonsense": 1}), "nonsense"),
        (change("match", [1, 2]), "JSON object"),
        (change("detection", {"max_faces": 3}), "under key 'match'"),
    ],
)
def test_bad_changes_are_refused_and_the_last_good_value_stays(raw: bytes, reason: str) -> None:
    state = ConfigState()
    state.apply(b"match", change("match", {"limit": 7}))
    good = state.version
    state.apply(b"match", raw)
    assert reason in state.rejected["match"]
    assert state.version == good
    assert state.settings().match.limit == 7
    state.apply(b"match", change("match", {"limit": 8}))  # a good one clears the refusal
    assert "match" not in state.rejected and state.settings().match.limit == 8


def test_a_tombstone_restores_the_default() -> None:
    state = ConfigState()
    state.apply(b"match", change("match", {"limit": 7}))
    state.apply(b"match", None)
    assert state.settings().match.limit == Settings().match.limit
    assert "match" not in state.overrides


def test_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match="unknown section"):
        validated("nope", {})
    with pytest.raises(ConfigError, match=r"liveness\.threshold"):
        validated("liveness", {"threshold": 2})
    assert validated("license", {"liveness": 1}) == {"liveness": 1}


def test_assignments_parse_json_values() -> None:
    assert parse_assignments(["a=1", "b=0.5", "c=true", "d=text", "e=null"]) == {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": "text",
        "e": None,
    }
    with pytest.raises(ConfigError):
        parse_assignments(["novalue"])


def test_secrets_are_hidden() -> None:
    settings = Settings(
        influx_monitoring={"token": "t0ken"}, storage={"clickhouse_url": "clickhouse://u:pw@h:9000"}
    )
    shown = hide_secrets(settings.model_dump(mode="json"))
    assert shown["influx_monitoring"]["token"] == "***"
    assert shown["storage"]["clickhouse_url"] == "***"
    assert "t0ken" not in json.dumps(shown) and "pw@" not in json.dumps(shown)


def test_live_settings_tell_listeners_and_the_log_level_follows() -> None:
    import logging

    root = logging.getLogger()
    levels = [root.level, *(h.level for h in root.handlers)]
    live = LiveSettings(Settings())
    seen: list[tuple[int, int]] = []
    live.subscribe(lambda old, new: seen.append((old.match.limit, new.match.limit)))
    live.subscribe(apply_logging_level)
    live.update(Settings(match={"limit": 5}, logging={"level": "DEBUG"}))
    assert seen == [(3, 5)]
    assert logging.getLogger().level == logging.DEBUG
    live.update(Settings(logging={"level": "WARNING"}))
    assert logging.getLogger().level == logging.WARNING
    root.setLevel(levels[0])
    for handler, level in zip(root.handlers, levels[1:], strict=True):
        handler.setLevel(level)


def test_numeric_choices_come_from_the_environment_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESTREAM_INFLUX_MONITORING__VERSION", "2")
    monkeypatch.setenv("FACESTREAM_DESCRIPTOR__DEFAULT_FACE_DESCRIPTOR_VERSION", "2")
    monkeypatch.setenv("FACESTREAM_LICENSE__LIVENESS", "1")
    settings = Settings()
    assert settings.influx_monitoring.version == 2
    assert settings.descriptor.default_face_descriptor_version == 2
    assert settings.license.liveness == 1
    monkeypatch.setenv("FACESTREAM_LICENSE__LIVENESS", "3")
    with pytest.raises(ValueError, match="less than or equal to 2"):
        Settings()
