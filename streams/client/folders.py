"""The image files of a folder: those of the formats the decoder accepts."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from processors.image import ACCEPTED_FORMATS, FLOAT_EXTENSIONS


def read_folder(folder: Path, extensions: frozenset[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


# The files of the formats the decoder accepts, by the extensions Pillow registers for them.
IMAGE_EXTENSIONS = frozenset(
    ext
    for ext, fmt in Image.registered_extensions().items()
    if fmt in ACCEPTED_FORMATS and ext not in FLOAT_EXTENSIONS
)
