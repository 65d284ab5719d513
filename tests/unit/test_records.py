"""schemas/records.py is what the .avsc contracts render to, and what fastavro decodes fits it."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from fastavro.utils import generate_one

import schemas
from schemas import codegen, records
from streams.kafka import topics


def test_records_module_is_rendered_from_the_current_schemas() -> None:
    assert codegen.RECORDS.read_text() == codegen.render(), "run `python -m schemas.codegen`"


def misfits(value: Any, kind: Any, where: str) -> list[str]:
    """Where a decoded value is not of the records.py type `kind` (empty: it fits)."""
    origin, args = get_origin(kind), get_args(kind)
    if is_typeddict(kind):
        hints = get_type_hints(kind)
        if not isinstance(value, dict) or set(value) != set(hints):
            keys = sorted(value) if isinstance(value, dict) else value
            return [f"{where}: {keys} is not a {kind.__name__} with {sorted(hints)}"]
        return [
            m for key, hint in hints.items() for m in misfits(value[key], hint, f"{where}.{key}")
        ]
    if origin in (typing.Union, types.UnionType):
        fits = [misfits(value, arg, where) for arg in args]
        return [] if any(not m for m in fits) else fits[0]
    if origin is Literal:
        return [] if value in args else [f"{where}: {value!r} not in {args}"]
    if origin is list:
        return [m for i, item in enumerate(value) for m in misfits(item, args[0], f"{where}[{i}]")]
    if origin is dict:
        return [m for k, item in value.items() for m in misfits(item, args[1], f"{where}[{k}]")]
    expected = type(None) if kind is None else kind
    return [] if isinstance(value, expected) else [f"{where}: {value!r} is not {expected}"]


@pytest.mark.parametrize("name", schemas.MESSAGE_TYPES)
def test_a_decoded_message_has_exactly_its_typed_record_fields(name: str) -> None:
    codec = schemas.codec(name)
    decoded = codec.decode(codec.encode(generate_one(codec.schema)))
    assert misfits(decoded, getattr(records, name), name) == []


def test_each_topic_is_typed_with_the_record_of_its_schema() -> None:
    """A topic names its schema and its record type; they must be the same message."""
    typed = {
        name: get_args(hint)[0].__name__
        for name, hint in get_type_hints(topics).items()
        if get_origin(hint) is topics.TopicSpec
    }
    specs = {n: v for n, v in vars(topics).items() if isinstance(v, topics.TopicSpec)}
    assert typed.keys() == specs.keys()
    assert {n: spec.schema for n, spec in specs.items()} == typed
