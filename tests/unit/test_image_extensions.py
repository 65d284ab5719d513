"""The files the folder readers take are the formats the decoder accepts: each one decodes, and
`facestream upload`, `send` and `enroll` all take the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from processors.errors import ImageError
from processors.image import ACCEPTED_FORMATS, FLOAT_EXTENSIONS, decode_image
from streams.cli import main
from streams.client import demo
from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.client.uploader import SUCCESS_LOG
from tests.unit.test_apiclient import ONE_FACE, FakeApi
from tests.unit.test_uploader import _run_cli

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1 << 20}
# The PPM family's members other than .ppm/.pnm hold other modes: a real file of each.
MODES = {".pbm": "1", ".pgm": "L"}
NOT_IMAGES = ("notes.txt", "a.svg", "b.heic", "c.tga")


def _save(path: Path) -> None:
    """A small picture in the format Pillow writes for the path's extension."""
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    picture.convert(MODES.get(path.suffix.lower(), "RGB")).save(path)


def test_the_extensions_are_those_of_the_accepted_formats() -> None:
    formats = {Image.registered_extensions()[ext] for ext in IMAGE_EXTENSIONS}
    assert formats == set(ACCEPTED_FORMATS)
    assert {".jpg", ".png", ".ppm", ".webp", ".gif", ".tif", ".bmp"} <= IMAGE_EXTENSIONS
    assert not FLOAT_EXTENSIONS & IMAGE_EXTENSIONS


@pytest.mark.parametrize("ext", [".pfm", ".tif"])
def test_floating_point_images_are_refused_not_turned_black(tmp_path: Path, ext: str) -> None:
    """HDR samples in 0..1: Pillow's conversion to 8 bits would make them a black picture."""
    path = tmp_path / f"hdr{ext}"
    Image.fromarray(np.full((24, 32), 0.5, dtype=np.float32)).save(
        path, format="PPM" if ext == ".pfm" else None
    )
    with pytest.raises(ImageError, match="floating-point") as refused:
        decode_image(path.read_bytes(), **LIMITS)
    assert refused.value.code == "undecodable_image"


def test_every_file_the_folder_reader_takes_decodes(tmp_path: Path) -> None:
    for ext in IMAGE_EXTENSIONS:
        _save(tmp_path / f"image{ext}")
    _save(tmp_path / "upper.PPM")
    for name in NOT_IMAGES:
        (tmp_path / name).write_bytes(b"not taken")
    found = read_folder(tmp_path, IMAGE_EXTENSIONS)
    assert sorted(p.name for p in found) == sorted(
        [f"image{ext}" for ext in IMAGE_EXTENSIONS] + ["upper.PPM"]
    )
    for path in found:
        with Image.open(path) as opened:  # a real file of the extension's format
            assert opened.format == Image.registered_extensions()[path.suffix.lower()]
        assert decode_image(path.read_bytes(), **LIMITS).shape == (24, 32, 3), path.name


def test_a_16_bit_pgm_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey = np.arange(0, 65536, 256, dtype=np.uint16).reshape(8, 32)
    Image.fromarray(grey).save(tmp_path / "deep.pgm")
    decoded = decode_image((tmp_path / "deep.pgm").read_bytes(), **LIMITS)
    assert (decoded[..., 0] == (grey >> 8)).all()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """FOLDER/<person>/<file>: a person per accepted extension and per other file."""
    folder = tmp_path / "people"
    for ext in IMAGE_EXTENSIONS:
        (folder / f"person{ext}").mkdir(parents=True)
        (folder / f"person{ext}" / f"image{ext}").write_bytes(ONE_FACE)
    for name in NOT_IMAGES:
        (folder / name).mkdir()
        (folder / name / name).write_bytes(ONE_FACE)
    return folder


def test_upload_send_and_enroll_take_the_same_files(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    sent: dict[str, list[str]] = {}

    async def send_and_wait(
        settings: Any, jobs: list[tuple[Path, Any]], timeout: float, label: str
    ) -> dict[str, Any]:
        sent[label] = sorted(path.name for path, _ in jobs)
        return {}

    monkeypatch.setattr(demo, "_send_and_wait", send_and_wait)
    assert main(["send", str(folder), "--wait"]) == 0
    assert main(["enroll", str(folder), "--list-id", "staff"]) == 0
    argv = ("--source", str(folder), "--warped", "0")
    assert _run_cli(monkeypatch, FakeApi(), *argv) == 0
    lines = (folder / SUCCESS_LOG).read_text().splitlines()
    uploaded = sorted(Path(json.loads(line)["image name"]).name for line in lines)

    expected = sorted(f"image{ext}" for ext in IMAGE_EXTENSIONS)
    assert sent == {"send": expected, "enroll": expected}
    assert uploaded == expected
