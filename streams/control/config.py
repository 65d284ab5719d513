"""Settings on the compacted config topic: one key per section, a tombstone restores the
default. The topic wins over defaults, the config file and the environment.

A section whose message cannot be decoded or does not validate is rejected with its reason and
keeps its last good value; `facestream config show` shows the same rejections any process sees.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

import schemas
from schemas.records import ConfigChange
from streams.kafka import topics
from streams.kafka.reader import TopicReader
from streams.settings import SECRETS, SECTIONS, Settings

Record = dict[str, Any]
HIDDEN = "***"


class ConfigError(ValueError):
    """A settings change that would not validate; the message says which key and why."""


def _reason(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


def validated(section: str, values: Any, base: dict[str, Any] | None = None) -> Record:
    """`values` as a valid override of `section` on top of the other overrides, or why not."""
    if section not in SECTIONS:
        raise ConfigError(f"unknown section {section!r}; sections: {', '.join(SECTIONS)}")
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: the values must be a JSON object, got {values!r}")
    try:
        Settings(**{**(base or {}), section: values})
    except ValidationError as error:
        raise ConfigError(_reason(error)) from None
    return values


@dataclass
class ConfigState:
    """The overrides the topic holds, section by section, and the sections it holds wrongly."""

    overrides: dict[str, Any] = field(default_factory=dict)  # section -> its values
    rejected: dict[str, str] = field(default_factory=dict)
    # Keys that are not UTF-8 name no section: shown as escaped text, kept as bytes so that
    # `config reset --bad-keys` can write their tombstones.
    bad_keys: dict[str, bytes] = field(default_factory=dict)
    version: int = 0  # counts accepted changes, so followers know when to rebuild

    def apply(self, key: bytes | None, raw: bytes | None) -> None:
        """One message of the topic as it is there (key and value bytes); never raises."""
        try:
            section = "?" if key is None else key.decode()
        except UnicodeDecodeError:
            self._apply_bad_key(key or b"", raw)
            return
        try:
            if raw is None:
                if self.overrides.pop(section, None) is not None:
                    self.version += 1
                self.rejected.pop(section, None)
                return
            change = topics.CONFIG.decode(raw)
            if change["section"] != section:
                raise ConfigError(f"message for {change['section']!r} under key {section!r}")
            try:
                values = json.loads(change["values_json"] or "")
            except ValueError as error:
                raise ConfigError(f"values are not JSON: {error}") from None
            others = {k: v for k, v in self.overrides.items() if k != section}
            self.overrides[section] = validated(section, values, others)
            self.rejected.pop(section, None)
            self.version += 1
        except (ConfigError, schemas.SchemaError) as error:
            self.rejected[section] = str(error)

    def _apply_bad_key(self, key: bytes, raw: bytes | None) -> None:
        shown = key.decode(errors="backslashreplace")
        if raw is None:  # its tombstone: removed
            self.bad_keys.pop(shown, None)
            self.rejected.pop(shown, None)
        else:
            self.bad_keys[shown] = key
            self.rejected[shown] = (
                "the key is not UTF-8, so it names no section; "
                "`facestream config reset --bad-keys` removes it"
            )

    def settings(self) -> Settings:
        return Settings(**self.overrides)


async def read_state(settings: Settings) -> ConfigState:
    """Everything the config topic holds now."""
    state = ConfigState()
    async with TopicReader(settings, topics.CONFIG, from_beginning=True) as reader:
        while not await reader.caught_up():
            for m in await reader.read_raw(timeout=0.2):
                state.apply(m.key, m.value)
    return state


def hide_secrets(values: Record) -> Record:
    shown = {section: dict(fields) for section, fields in values.items()}
    for section, names in SECRETS.items():
        for name in names:
            if shown.get(section, {}).get(name):
                shown[section][name] = HIDDEN
    return shown


def shown(section: str, values: Any) -> str:
    """A section's values (None: a reset) as JSON for a terminal or a log, secrets hidden."""
    if values is None:
        return "(reset to default)"
    if not isinstance(values, dict):
        return "(not a JSON object)"
    return json.dumps(hide_secrets({section: values})[section])


def shown_json(section: str, values_json: str | None) -> str:
    try:
        return shown(section, None if values_json is None else json.loads(values_json))
    except ValueError:
        return "(not JSON)"


def author() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


async def publish(settings: Settings, section: str, values: Record | None) -> None:
    """Writes a section (None: back to its default) to the config topic and its history."""
    change: ConfigChange = {
        "section": section,
        "values_json": None if values is None else json.dumps(values),
        "author": author(),
        "changed_at": datetime.now(UTC),
    }
    encoded = topics.CONFIG.encode(change)  # CONFIG_HISTORY has the same contract
    key = section.encode()
    await _send(
        settings,
        [
            (topics.CONFIG, key, None if values is None else encoded),
            (topics.CONFIG_HISTORY, key, encoded),
        ],
    )


async def remove_bad_keys(settings: Settings, keys: list[bytes]) -> None:
    """Tombstones for keys that name no section, so compaction removes their messages."""
    await _send(settings, [(topics.CONFIG, key, None) for key in keys])


async def _send(
    settings: Settings, messages: list[tuple[topics.TopicSpec[Any], bytes, bytes | None]]
) -> None:
    await topics.ensure_topics(settings.kafka)
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers(settings.kafka), acks="all"
    )
    await producer.start()
    try:
        for spec, key, value in messages:
            await producer.send_and_wait(topics.topic_name(settings.kafka, spec), value, key=key)
    finally:
        await producer.stop()


def parse_assignments(pairs: list[str]) -> Record:
    """key=value pairs; a value that parses as JSON (numbers, true, null, ...) is taken as such."""
    values: Record = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"expected key=value, got {pair!r}")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


async def history(settings: Settings, section: str) -> list[Record]:
    changes = []
    async with TopicReader(settings, topics.CONFIG_HISTORY, from_beginning=True) as reader:
        while not await reader.caught_up():
            changes += [c for key, c in await reader.read(timeout=0.2) if key == section and c]
    return sorted(changes, key=lambda c: c["changed_at"])
