"""Claim checks: images over the message limit, stored by the producer, read by the detect stage.

A reference travels in the message, so whoever can produce to the images topic chooses it. The
worker therefore reads only what a producer of the same account could have stored: a `file://`
URI (no host, or localhost) naming a regular file directly inside that account's subfolder of
the claim-check folder, links resolved. Everything else fails with one code and one message, so
that a reference learns nothing about the worker's files, not even whether one exists.
"""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from processors.errors import ImageError

BAD_REF = "bad_image_ref"
_CHUNK = 1 << 20
# O_NONBLOCK: opening a FIFO returns at once; O_NOFOLLOW: a link swapped in after the check fails.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _refused() -> ImageError:
    return ImageError("the image reference names no stored image of this account", code=BAD_REF)


def account_folder(folder: Path, account_id: str) -> Path:
    """The account's subfolder, named by a hash: any account id makes one safe file name."""
    digest = hashlib.sha256(account_id.encode("utf-8", "surrogatepass")).hexdigest()
    return folder / digest[:32]


def store(folder: Path, account_id: str, data: bytes) -> str:
    """Writes the image under a fresh name in the account's subfolder; its `file://` URI."""
    target = account_folder(folder, account_id)
    target.mkdir(parents=True, exist_ok=True)
    path = target / uuid.uuid4().hex
    path.write_bytes(data)
    return path.resolve().as_uri()


def _local_path(ref: str) -> Path | None:
    parts = urlsplit(ref)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    if parts.query or parts.fragment:
        return None
    path = Path(unquote(parts.path))
    return path if path.is_absolute() else None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read(ref: str, *, folder: Path, account_id: str, max_bytes: int) -> bytes:
    """The bytes `ref` names, or ImageError: BAD_REF for any reference it may not read,
    image_too_large (reading stops one byte past the limit) for a stored image too big."""
    path = _local_path(ref)
    if path is None:
        raise _refused()
    try:
        allowed = account_folder(folder, account_id).resolve()
        target = path.resolve(strict=True)
        if target.parent != allowed:
            raise _refused()
        fd = os.open(target, _OPEN_FLAGS)
    except (OSError, ValueError, RuntimeError):  # missing, unreadable, NUL byte, link loop
        raise _refused() from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused()
        data = _read_at_most(fd, max_bytes + 1)
    except OSError:
        raise _refused() from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ImageError(
            f"stored image is over the limit of {max_bytes} bytes", code="image_too_large"
        )
    return data
