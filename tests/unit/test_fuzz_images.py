"""Mutated images through decoding and the real YuNet detector: only ProcessingError comes out.

Seeds are small images of every accepted format (a face, a gradient, extreme aspect ratios),
encoded here; hypothesis flips bits, cuts, inserts bytes and writes interesting integers into
the header region, derandomized so that CI runs the same 10,000+ images every time.
"""

from __future__ import annotations

import io
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from processors.detector import YuNetDetector
from processors.errors import ProcessingError
from processors.image import ACCEPTED_FORMATS, decode_image
from processors.types import ImageBGR

EXAMPLES = 10_500
MAX_BYTES = 1 << 20
# Small enough that a header mutated to claim a big image stays cheap to decode, big enough
# for every seed (4000x1).
MAX_PIXELS = 1_000_000
FORMATS = ACCEPTED_FORMATS
EXTREME = ((1, 4000), (4000, 1), (1, 5000), (5000, 1), (3, 3000))
INTERESTING = (0, 1, 2, 127, 255, 256, 1280, 4000, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)).save(out, format=fmt)
    return out.getvalue()


def _face(testdata_dir: Path, detector: YuNetDetector) -> ImageBGR:
    """The astronaut's face with a margin, 96 px: a seed the detector finds a face in."""
    photo = cast(ImageBGR, cv2.imread(str(testdata_dir / "astronaut.png")))
    box = detector.detect(photo)[0]
    cx, cy, side = box.x + box.width / 2, box.y + box.height / 2, 1.6 * max(box.width, box.height)
    x, y = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    crop = photo[y : y + int(side), x : x + int(side)]
    return cast(ImageBGR, cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def seeds(testdata_dir: Path, detector: YuNetDetector) -> list[bytes]:
    gradient = np.zeros((40, 56, 3), np.uint8)
    gradient[..., 0] = np.arange(56, dtype=np.uint8)[None, :] * 4
    gradient[..., 2] = np.arange(40, dtype=np.uint8)[:, None] * 6
    pictures = [_face(testdata_dir, detector), gradient]
    pictures += [np.full((h, w, 3), 128, np.uint8) for h, w in EXTREME]
    return [_encode(p, fmt) for p in pictures for fmt in FORMATS]


@dataclass(frozen=True)
class Mutation:
    kind: str  # flip, cut, insert, header
    at: int
    value: bytes = b""

    def apply(self, data: bytes) -> bytes:
        if not data:
            return data
        at = self.at % len(data)
        if self.kind == "flip":
            return data[:at] + bytes([data[at] ^ self.value[0]]) + data[at + 1 :]
        if self.kind == "cut":
            return data[:at]
        if self.kind == "insert":
            return data[:at] + self.value + data[at:]
        # header: an interesting integer written over the first bytes, where sizes live
        at = self.at % min(len(data), 64)
        return data[:at] + self.value + data[at + len(self.value) :]


_positions = st.integers(min_value=0, max_value=1 << 20)
_integers = st.builds(
    lambda n, fmt: struct.pack(fmt, n & (0xFFFF if fmt[1] == "H" else 0xFFFFFFFF)),
    st.sampled_from(INTERESTING),
    st.sampled_from(("<H", ">H", "<I", ">I")),
)
_mutations = st.one_of(
    st.builds(
        Mutation, st.just("flip"), _positions, st.sampled_from([bytes([1 << b]) for b in range(8)])
    ),
    st.builds(Mutation, st.just("cut"), _positions),
    st.builds(Mutation, st.just("insert"), _positions, st.binary(min_size=1, max_size=16)),
    st.builds(Mutation, st.just("header"), _positions, _integers),
)


def _outcome(data: bytes, detector: YuNetDetector) -> str:
    try:
        image = decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
        faces = detector.detect(image)
    except ProcessingError as error:
        return error.code
    return "faces" if faces else "no_faces"


@pytest.mark.parametrize(("height", "width"), EXTREME)
def test_extreme_aspect_ratios_decode_and_detect(
    detector: YuNetDetector, height: int, width: int
) -> None:
    data = _encode(np.full((height, width, 3), 200, np.uint8), "PNG")
    assert _outcome(data, detector) == "no_faces"


def test_the_face_seed_has_a_face(seeds: list[bytes], detector: YuNetDetector) -> None:
    assert [_outcome(seeds[i], detector) for i in range(len(FORMATS))] == ["faces"] * len(FORMATS)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_mutated_images_raise_only_processing_errors(
    seeds: list[bytes], detector: YuNetDetector
) -> None:
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.sampled_from(seeds), st.lists(_mutations, min_size=1, max_size=4))
    def mutated(seed: bytes, mutations: list[Mutation]) -> None:
        data = seed
        for mutation in mutations:
            data = mutation.apply(data)
        outcomes[_outcome(data, detector)] += 1

    started = time.monotonic()
    mutated()
    total = sum(outcomes.values())
    accepted = outcomes["faces"] + outcomes["no_faces"]
    print(
        f"\n{total} mutated images in {time.monotonic() - started:.0f} s: "
        f"{accepted} decoded and detected, {total - accepted} rejected; by outcome {dict(outcomes)}"
    )
    assert total >= 10_000
