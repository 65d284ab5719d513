"""Every topic's contract: round trips, clear errors, and backward compatibility."""

from __future__ import annotations

import copy
import json

import pytest
from fastavro.utils import generate_one

import schemas
from schemas.compat import incompatibilities, unsnapshotted


@pytest.mark.parametrize("name", schemas.MESSAGE_TYPES)
def test_current_schema_is_snapshotted(name: str) -> None:
    assert not unsnapshotted(name), f"{name} changed: run `python -m schemas.compat`"


@pytest.mark.parametrize("name", schemas.MESSAGE_TYPES)
def test_current_schema_reads_every_older_version(name: str) -> None:
    current = schemas.current_schema(name)
    for version, path in schemas.history_versions(name).items():
        assert incompatibilities(current, json.loads(path.read_text())) == [], version


def test_a_field_without_default_is_caught() -> None:
    old = schemas.current_schema("Sample")
    new = copy.deepcopy(old)
    new["fields"].append({"name": "camera", "type": "string"})
    assert incompatibilities(new, old)
    new["fields"][-1]["default"] = "unknown"
    assert incompatibilities(new, old) == []


@pytest.mark.parametrize("name", schemas.MESSAGE_TYPES)
def test_round_trip(name: str) -> None:
    codec = schemas.codec(name)
    data = codec.encode(generate_one(codec.schema))
    assert codec.encode(codec.decode(data)) == data


def test_wrong_shape_is_named() -> None:
    with pytest.raises(schemas.SchemaError) as raised:
        schemas.codec("Sample").encode({"sample_id": 7})
    assert raised.value.code == "schema_mismatch"
    assert "sample_id" in str(raised.value)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "bad_wire_format"),
        (b'{"json": true}', "bad_wire_format"),
        (bytes((schemas.MAGIC, 99)) + b"xx", "unknown_schema_version"),
        (bytes((schemas.MAGIC, 1)) + b"\x02", "schema_mismatch"),
    ],
)
def test_foreign_bytes_are_refused_with_a_reason(data: bytes, code: str) -> None:
    with pytest.raises(schemas.SchemaError) as raised:
        schemas.codec("Image").decode(data)
    assert raised.value.code == code
