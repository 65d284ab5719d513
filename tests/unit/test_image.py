"""Decoding untrusted bytes: every refusal has its code, and a bomb never gets decoded."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from processors.errors import ImageError
from processors.image import ACCEPTED_FORMATS, decode_image, encode_jpeg

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 4_000_000}


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _photo() -> Image.Image:
    """A 320x240 RGB picture with enough detail that its JPEG has many scan bytes."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return Image.fromarray(noise)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height RGB pixels (the data is a few rows)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(4 * (1 + 3 * width)))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def _refused(data: bytes, code: str, **limits: int) -> ImageError:
    with pytest.raises(ImageError) as caught:
        decode_image(data, **{**LIMITS, **limits})
    assert caught.value.code == code, caught.value.message
    return caught.value


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything asks Pillow for pixel data."""

    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"pixels of a {self.size} image were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_empty() -> None:
    _refused(b"", "empty_image")


def test_too_many_bytes() -> None:
    data = _encode(_photo(), "PNG")
    error = _refused(data, "image_too_large", max_bytes=len(data) - 1)
    assert str(len(data)) in error.message
    decode_image(data, **{**LIMITS, "max_bytes": len(data)})


@pytest.mark.parametrize("data", [b"hello, world", b"\x89PNG\r\n\x1a\n" + bytes(100), bytes(5000)])
def test_not_an_image(data: bytes) -> None:
    _refused(data, "undecodable_image")


@pytest.mark.parametrize("fmt", ["TGA", "ICO", "PDF"])
def test_formats_outside_the_photo_ones_are_refused(fmt: str) -> None:
    _refused(_encode(_photo(), fmt), "undecodable_image")


@pytest.mark.parametrize("fmt", ACCEPTED_FORMATS)
def test_photo_formats_decode(fmt: str) -> None:
    image = decode_image(_encode(_photo(), fmt), **LIMITS)
    assert image.shape == (240, 320, 3)


@pytest.mark.usefixtures("no_pixel_decoding")
def test_pixel_limit_is_checked_from_the_header() -> None:
    data = _encode(_photo(), "JPEG")
    error = _refused(data, "too_many_pixels", max_pixels=320 * 240 - 1)
    assert "320x240" in error.message


@pytest.mark.usefixtures("no_pixel_decoding")
def test_decompression_bomb_is_refused_without_decoding() -> None:
    bomb = _png_declaring(50_000, 50_000)  # 7.5 GB of RGB if decoded
    assert len(bomb) < 1000
    started = time.perf_counter()
    # Above twice Pillow's own MAX_IMAGE_PIXELS: Pillow raises before our check can run.
    _refused(bomb, "too_many_pixels", max_pixels=10**12)
    _refused(bomb, "too_many_pixels")
    assert time.perf_counter() - started < 0.5


@pytest.mark.usefixtures("no_pixel_decoding")
def test_pillow_bomb_warning_is_a_refusal_too() -> None:
    side = int((Image.MAX_IMAGE_PIXELS or 0) ** 0.5) + 100  # over the limit, under twice it
    _refused(_png_declaring(side, side), "too_many_pixels", max_pixels=10**12)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("kept", [0.05, 0.5, 0.99])
def test_cut_file_is_refused(fmt: str, kept: float) -> None:
    data = _encode(_photo(), fmt)
    _refused(data[: int(len(data) * kept)], "truncated_image")


def test_truncated_images_must_stay_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(_encode(_photo(), "PNG"), **LIMITS)


def test_colour_order_is_bgr() -> None:
    red = Image.new("RGB", (8, 4), (255, 0, 0))
    image = decode_image(_encode(red, "PNG"), **LIMITS)
    assert image.shape == (4, 8, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous and image.flags.writeable
    assert (image == [0, 0, 255]).all()


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (6, 5), 77), [77, 77, 77]),
        (Image.new("RGBA", (6, 5), (10, 20, 30, 0)), [30, 20, 10]),
        (Image.new("RGB", (6, 5), (10, 20, 30)).quantize(4), [30, 20, 10]),
        (Image.new("1", (6, 5), 1), [255, 255, 255]),
        # 16-bit grey is scaled to 8 bits, not clipped to white.
        (Image.fromarray(np.full((5, 6), 0x8000, np.uint16)), [128, 128, 128]),
    ],
    ids=["grey", "rgba", "palette", "bilevel", "grey16"],
)
def test_other_modes_become_bgr(image: Image.Image, expected: list[int]) -> None:
    decoded = decode_image(_encode(image, "PNG"), **LIMITS)
    assert decoded.shape == (5, 6, 3) and decoded.dtype == np.uint8
    assert (decoded == expected).all()


def test_exif_orientation_is_applied() -> None:
    # Stored 40 wide, 20 high: red left half, blue right half. Orientation 6 means "rotate
    # 90 degrees clockwise to display": upright it is 20 wide, 40 high, red on top.
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode_image(_encode(stored, "JPEG", exif=exif, quality=95), **LIMITS)
    assert image.shape == (40, 20, 3)
    np.testing.assert_allclose(image[5, 10], [0, 0, 255], atol=8)
    np.testing.assert_allclose(image[35, 10], [255, 0, 0], atol=8)


def test_jpeg_round_trip() -> None:
    original = decode_image(_encode(_photo().resize((80, 60)).resize((320, 240)), "PNG"), **LIMITS)
    data = encode_jpeg(original)
    assert data[:3] == b"\xff\xd8\xff"
    again = decode_image(data, **LIMITS)
    assert again.shape == original.shape
    assert np.abs(again.astype(int) - original).mean() < 3
    assert len(encode_jpeg(original, quality=50)) < len(data)
