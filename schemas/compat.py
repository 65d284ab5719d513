"""Backward compatibility: can a reader with the current schema read every older message?"""

from __future__ import annotations

import io
import json
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from fastavro.utils import generate_many

import schemas


def incompatibilities(
    reader: dict[str, Any], writer: dict[str, Any], samples: int = 25
) -> list[str]:
    """Why messages written with `writer` would not decode with `reader` (empty: compatible).

    Writes generated records (every union branch and optional field gets exercised over the
    samples) with the writer's schema and resolves them with the reader's, as consumers do.
    """
    parsed_reader, parsed_writer = parse_schema(reader), parse_schema(writer)
    problems = []
    for record in generate_many(parsed_writer, samples):
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed_writer, record)
        buffer.seek(0)
        try:
            schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
    return sorted(set(problems))


def unsnapshotted(name: str) -> bool:
    """True when the current schema differs from its latest snapshot (a version bump is due)."""
    versions = schemas.history_versions(name)
    if not versions:
        return True
    latest = json.loads(versions[max(versions)].read_text())
    current = schemas.current_schema(name)
    return bool(
        to_parsing_canonical_form(parse_schema(current))
        != to_parsing_canonical_form(parse_schema(latest))
    )


def snapshot(name: str) -> int:
    """Stores the current schema as the next version; returns that version."""
    versions = schemas.history_versions(name)
    version = max(versions, default=0) + 1
    path = schemas.HISTORY_DIR / f"{schemas.NAMESPACE}.{name}.v{version}.avsc"
    path.write_text(json.dumps(schemas.current_schema(name), indent=1) + "\n")
    return version


if __name__ == "__main__":
    # python -m schemas.compat: snapshot every changed schema after checking it is compatible.
    for message in schemas.MESSAGE_TYPES:
        if not unsnapshotted(message):
            continue
        for old, path in schemas.history_versions(message).items():
            found = incompatibilities(schemas.current_schema(message), json.loads(path.read_text()))
            if found:
                raise SystemExit(f"{message} cannot read its v{old} messages: {found[0]}")
        print(f"{message}: snapshot v{snapshot(message)}")
