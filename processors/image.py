"""Decoding untrusted image bytes under limits, and JPEG encoding of what the pipeline keeps."""

from __future__ import annotations

import io
import warnings
from typing import cast

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from processors.errors import ImageError
from processors.types import ImageBGR

# Photo formats only, and the plain PPM family (LUNA's uploader takes .ppm): Pillow would also
# open EPS (through Ghostscript), PSD, ICNS and others whose decoders an untrusted upload has no
# business reaching.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM")
# Pillow files PFM (floating-point samples, HDR data, not a photo) under PPM; the decoder refuses
# floating-point images of any format, so the folder readers skip this extension.
FLOAT_EXTENSIONS = frozenset({".pfm"})


def _is_truncation(exc: BaseException) -> bool:
    # Pillow has no exception class for a cut file, only these OSError messages
    # ("image file is truncated ...", "Truncated File Read").
    return isinstance(exc, OSError) and "truncated" in str(exc).lower()


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageBGR:
    """Decode JPEG/PNG/... bytes to an upright BGR uint8 H x W x 3 array, or raise ImageError.

    The pixel limit is checked on the size the header declares, before any pixel is decoded, so
    a decompression bomb costs a header parse. A cut file is an error, never a partly grey image.
    """
    if not data:
        raise ImageError("image is empty", code="empty_image")
    if len(data) > max_bytes:
        raise ImageError(
            f"image is {len(data)} bytes, over the limit of {max_bytes}", code="image_too_large"
        )
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone in this process told Pillow to pad cut files with grey: refuse to run like that.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; cut images would pass")

    try:
        # Image.open only parses the header. Pillow's own bomb guard warns above
        # Image.MAX_IMAGE_PIXELS and raises above twice that: both mean too many pixels.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image has too many pixels: {exc}", code="too_many_pixels") from exc
    except UnidentifiedImageError as exc:
        accepted = ", ".join(ACCEPTED_FORMATS)
        raise ImageError(f"data is not a {accepted} image", code="undecodable_image") from exc
    except Exception as exc:  # plugins raise OSError, SyntaxError, ValueError, struct.error...
        if _is_truncation(exc):
            raise ImageError(f"image header is cut short: {exc}", code="truncated_image") from exc
        raise ImageError(f"image header is invalid: {exc}", code="undecodable_image") from exc

    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                f"image is {width}x{height} pixels, over the limit of {max_pixels}",
                code="too_many_pixels",
            )
        if image.mode == "F":  # Pillow's convert would clip such samples (0..1 in HDR) to black
            raise ImageError(
                f"{image.format} image of floating-point samples: not a photo",
                code="undecodable_image",
            )
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright.mode.startswith("I;16") or (image.format == "PPM" and upright.mode == "I"):
                # 16-bit grey (PNG, TIFF; PGM opens as I, scaled to 0..65535): Pillow's convert
                # would clip it to white, not scale it.
                pixels = (np.asarray(upright, dtype=np.uint16) >> 8).astype(np.uint8)
                conversion = cv2.COLOR_GRAY2BGR
            else:
                rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
                pixels, conversion = np.asarray(rgb), cv2.COLOR_RGB2BGR
        except Exception as exc:
            if _is_truncation(exc):
                raise ImageError(f"image data is cut short: {exc}", code="truncated_image") from exc
            raise ImageError(f"image data is corrupt: {exc}", code="undecodable_image") from exc
    # cvtColor returns a new contiguous array, detached from Pillow's read-only buffer.
    return cast(ImageBGR, cv2.cvtColor(pixels, conversion))


def encode_jpeg(image: ImageBGR, quality: int = 95) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError(f"could not encode a {image.shape} image as JPEG", code="encode_failed")
    return encoded.tobytes()
