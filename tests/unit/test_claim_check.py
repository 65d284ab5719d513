"""Claim-check references: only a regular file the producer stored for the same account is read;
every other reference fails with one code and one message, at once."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from processors.errors import ImageError
from streams.kafka import claim_check
from streams.kafka.images import ImageProducer
from streams.settings import ImageSettings, Settings
from streams.worker.stages import read_image_bytes

ACCOUNT = str(uuid.uuid4())
DATA = b"stored image bytes"
LIMIT = 4096


@pytest.fixture
def limits(tmp_path: Path) -> ImageSettings:
    # A space in the folder: the reference is percent-encoded and must still be read.
    return ImageSettings(claim_check_dir=tmp_path / "claim checks", max_bytes=LIMIT)


@pytest.fixture
def stored(limits: ImageSettings) -> Path:
    """A good claim check of ACCOUNT."""
    ref = claim_check.store(limits.claim_check_dir, ACCOUNT, DATA)
    return Path(unquote(urlsplit(ref).path))


def _read(ref: str, limits: ImageSettings, account: str = ACCOUNT) -> bytes:
    record: Any = {"context": {"account_id": account}, "data": None, "data_ref": ref}
    return read_image_bytes(record, limits)


def _refusal(ref: str, limits: ImageSettings, account: str = ACCOUNT) -> tuple[str, str]:
    with pytest.raises(ImageError) as caught:
        _read(ref, limits, account)
    return caught.value.code, caught.value.message


def test_a_stored_reference_is_read(limits: ImageSettings, stored: Path) -> None:
    assert " " in str(stored.parent.parent)
    assert _read(stored.as_uri(), limits) == DATA
    assert _read(f"file://localhost{stored.as_uri().removeprefix('file://')}", limits) == DATA


async def test_the_producer_writes_references_the_worker_reads(tmp_path: Path) -> None:
    settings = Settings(image=ImageSettings(claim_check_dir=tmp_path / "blobs"))
    data = os.urandom(settings.kafka.max_message_bytes)
    record = ImageProducer(settings).image_record(data, account_id=ACCOUNT)
    assert record["data"] is None and str(record["data_ref"]).startswith("file:///")
    assert read_image_bytes(record, settings.image) == data


@pytest.mark.timeout(20)
def test_every_escape_is_one_code_and_one_message(
    tmp_path: Path, limits: ImageSettings, stored: Path
) -> None:
    folder = stored.parent
    outside = tmp_path / "photo.jpg"
    outside.write_bytes(DATA)
    (folder / "link.jpg").symlink_to(outside)
    os.mkfifo(folder / "pipe")
    (folder / "subfolder").mkdir()
    unreadable = folder / "unreadable"
    unreadable.write_bytes(DATA)
    unreadable.chmod(0)
    good = stored.as_uri().removeprefix("file://")
    refs = {
        "passwd": "file:///etc/passwd",
        "http": f"http://x{good}",
        "http passwd": "http://x/etc/passwd",
        "other host": f"file://otherhost{good}",
        "relative": "file:etc/passwd",
        "query": f"{stored.as_uri()}?x=1",
        "dot-dot": f"{folder.as_uri()}/../../../photo.jpg",
        "outside": outside.as_uri(),
        "link out": (folder / "link.jpg").as_uri(),
        "fifo": (folder / "pipe").as_uri(),
        "dev zero": "file:///dev/zero",
        "folder": folder.as_uri(),
        "root folder": limits.claim_check_dir.as_uri(),
        "subfolder": (folder / "subfolder").as_uri(),
        "missing": (folder / "missing").as_uri(),
        "nul byte": f"{stored.as_uri()}%00",
        "plain path": str(stored),
    }
    if os.geteuid() != 0:  # root reads a mode 000 file
        refs["unreadable"] = unreadable.as_uri()
    started = time.monotonic()
    outcomes = {name: _refusal(ref, limits) for name, ref in refs.items()}
    outcomes["another account"] = _refusal(stored.as_uri(), limits, str(uuid.uuid4()))
    assert time.monotonic() - started < 2  # the FIFO and /dev/zero return at once
    refusal = ("bad_image_ref", "the image reference names no stored image of this account")
    assert outcomes == dict.fromkeys([*refs, "another account"], refusal)


def test_a_stored_file_over_the_limit_stops_the_read_at_the_limit(
    limits: ImageSettings, stored: Path
) -> None:
    huge = stored.parent / "huge"
    with open(huge, "wb") as out:
        out.truncate(8 << 30)  # sparse: reading it all would take seconds and 8 GiB
    started = time.monotonic()
    assert _refusal(huge.as_uri(), limits) == (
        "image_too_large",
        f"stored image is over the limit of {LIMIT} bytes",
    )
    assert time.monotonic() - started < 1
    (stored.parent / "exact").write_bytes(b"x" * LIMIT)
    assert _read((stored.parent / "exact").as_uri(), limits) == b"x" * LIMIT
