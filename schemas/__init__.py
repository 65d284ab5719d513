"""Avro contracts of every topic: the single truth of a message's shape.

Wire format of every message value: one magic byte, one byte of schema version, then the
schemaless Avro body. The version names the writer's schema, kept as a snapshot under
`avro/history/`, so a reader with a newer schema still decodes an older message.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema, load_schema
from fastavro.validation import ValidationError, validate

SCHEMA_DIR = Path(__file__).parent / "avro"
HISTORY_DIR = SCHEMA_DIR / "history"
NAMESPACE = "facestream"
MAGIC = 0xFA

# The records that travel on topics (the other .avsc files are named parts of these).
MESSAGE_TYPES = (
    "Image",
    "Detections",
    "LivenessResults",
    "Descriptors",
    "Event",
    "Face",
    "List",
    "Sample",
    "DeadLetter",
    "ConfigChange",
    "Reextraction",
    "TaskState",
)

Record = dict[str, Any]


class SchemaError(ValueError):
    """A value that does not fit its contract; `code` goes into dead letters and HTTP errors."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def current_schema(name: str) -> dict[str, Any]:
    """The schema in `avro/`, with every named type it uses written out in full."""
    schema = expand_schema(
        load_schema(str(SCHEMA_DIR / f"{NAMESPACE}.{name}.avsc"), _write_hint=False)
    )
    assert isinstance(schema, dict)
    return schema


def history_versions(name: str) -> dict[int, Path]:
    found = {}
    for path in HISTORY_DIR.glob(f"{NAMESPACE}.{name}.v*.avsc"):
        found[int(path.stem.rsplit(".v", 1)[1])] = path
    return dict(sorted(found.items()))


class Codec:
    """Encodes and decodes one message type; decodes every version it has a snapshot of."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.schema = parse_schema(current_schema(name))
        versions = history_versions(name)
        if not versions:
            raise RuntimeError(f"schema {name} has no snapshot in {HISTORY_DIR}")
        self.version = max(versions)
        self._writers = {v: parse_schema(json.loads(p.read_text())) for v, p in versions.items()}

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(bytes((MAGIC, self.version)))
        try:
            schemaless_writer(buffer, self.schema, record)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise SchemaError("schema_mismatch", self._explain(record, exc)) from exc
        return buffer.getvalue()

    def decode(self, data: bytes | None) -> Record:
        if data is None:  # a tombstone where a message is expected
            raise SchemaError("null_value", f"a null value where a {self.name} message belongs")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SchemaError("bad_wire_format", f"a {type(data).__name__}, not {self.name} bytes")
        if len(data) < 2 or data[0] != MAGIC:
            raise SchemaError(
                "bad_wire_format",
                f"not a facestream {self.name} message: expected magic byte 0x{MAGIC:02X}",
            )
        writer = self._writers.get(data[1])
        if writer is None:
            raise SchemaError(
                "unknown_schema_version",
                f"{self.name} schema version {data[1]} is unknown here "
                f"(known: {sorted(self._writers)})",
            )
        # A message of the current version needs no resolution (its snapshot is the current
        # schema, tests/unit/test_schemas.py): a quarter of the decoding time saved.
        reader = None if data[1] == self.version else self.schema
        try:
            record = schemaless_reader(io.BytesIO(data[2:]), writer, reader)
        except Exception as exc:  # fastavro raises many types on truncated or foreign bytes
            raise SchemaError(
                "schema_mismatch", f"cannot decode {self.name} v{data[1]}: {exc!r}"
            ) from exc
        if not isinstance(record, dict):
            raise SchemaError("schema_mismatch", f"{self.name} did not decode to a record")
        return record

    def _explain(self, record: Mapping[str, Any], exc: Exception) -> str:
        try:
            validate(record, self.schema, raise_errors=True)
        except ValidationError as invalid:
            return f"{self.name} does not fit its schema: {invalid}"
        return f"{self.name} could not be encoded: {exc!r}"


@cache
def codec(name: str) -> Codec:
    return Codec(name)
