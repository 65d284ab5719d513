"""Descriptor version 2 (dlib ResNet v1) on dlib's examples/johns: 5 people x 11 face chips.

The johns images are dlib face chips (150x150, padding 0.25), so they test both the network and
the chip geometry: run through detector -> sample -> chip, they should give back what the
originals give.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from processors.align import SAMPLE_SIZE, SAMPLE_TEMPLATE, warp
from processors.extract_dlib import CHIP_POINTS, SAMPLE_TO_CHIP, DlibResNetExtractor
from processors.registry import DLIB_RESNET, YUNET, model_path
from processors.types import ImageBGR
from tests.fakes import CountingSession

# The chips are tight crops; YuNet needs context around a face to place its points steadily
# (on the bare 150x150 chip they scatter up to 3x more), so the chips are framed in black.
BORDER = 75


@pytest.fixture(scope="module")
def extractor(models_dir: Path) -> DlibResNetExtractor:
    return DlibResNetExtractor(model_path(DLIB_RESNET.name, models_dir))


@pytest.fixture(scope="module")
def johns(testdata_dir: Path) -> tuple[list[ImageBGR], npt.NDArray[np.str_]]:
    """The original chips, sorted, and each one's person (its folder)."""
    files = sorted((testdata_dir / "johns").glob("*/*.jpg"))
    assert len(files) == 55
    chips = [cast(ImageBGR, cv2.imread(str(f))) for f in files]
    return chips, np.array([f.parent.name for f in files])


@pytest.fixture(scope="module")
def samples(models_dir: Path, johns: tuple[list[ImageBGR], npt.NDArray[np.str_]]) -> list[ImageBGR]:
    size = 150 + 2 * BORDER
    detector = cv2.FaceDetectorYN.create(
        str(model_path(YUNET.name, models_dir)), "", (size, size), 0.8
    )
    out = []
    for chip in johns[0]:
        framed = cv2.copyMakeBorder(chip, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT)
        _, faces = detector.detect(framed)
        assert faces is not None and len(faces) == 1
        out.append(warp(cast(ImageBGR, framed), faces[0, 4:14].reshape(5, 2).astype(np.float32)))
    return out


def test_chip_transform_puts_the_template_where_dlib_puts_the_face() -> None:
    mapped = cv2.transform(np.asarray(SAMPLE_TEMPLATE, np.float64)[None], SAMPLE_TO_CHIP)[0]
    # Residuals are the two templates' differing face proportions, a few pixels.
    assert np.abs(mapped - CHIP_POINTS).max() < 3.5
    assert SAMPLE_TO_CHIP[0, 0] == pytest.approx(0.966, abs=1e-3)


def test_extract_runs_once_per_batch_and_normalises(
    extractor: DlibResNetExtractor, samples: list[ImageBGR], monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingSession(extractor.session)
    monkeypatch.setattr(extractor, "session", counting)
    batch = extractor.extract(samples[:16])
    single = extractor.extract(samples[3:4])
    float32 = np.dtype(np.float32)
    assert counting.batches == [((16, 150, 150, 3), float32), ((1, 150, 150, 3), float32)]
    assert batch.shape == (16, extractor.dimension) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(single[0], batch[3], atol=1e-5)
    assert extractor.extract([]).shape == (0, 128)


def test_extract_rejects_a_sample_of_another_size(extractor: DlibResNetExtractor) -> None:
    with pytest.raises(ValueError, match=f"{SAMPLE_SIZE}x{SAMPLE_SIZE}"):
        extractor.extract([np.zeros((112, 112, 3), np.uint8)])


def test_rebuilt_chips_match_dlibs_own(
    extractor: DlibResNetExtractor,
    johns: tuple[list[ImageBGR], npt.NDArray[np.str_]],
    samples: list[ImageBGR],
) -> None:
    originals = np.stack(johns[0])[..., ::-1].astype(np.float32)
    (raw,) = extractor.session.run(None, {extractor.input_name: originals})
    reference = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    agreement = np.sum(extractor.extract(samples) * reference, axis=1)
    # Measured: mean 0.995, min 0.988; a chip 3 px off or 5 % too small scores lower.
    assert agreement.mean() > 0.99 and agreement.min() > 0.98


def test_same_person_scores_above_every_different_person(
    extractor: DlibResNetExtractor,
    johns: tuple[list[ImageBGR], npt.NDArray[np.str_]],
    samples: list[ImageBGR],
) -> None:
    descriptors = extractor.extract(samples)
    people = johns[1]
    scores = descriptors @ descriptors.T
    pairs = np.triu_indices(len(people), 1)
    same = (people[:, None] == people[None, :])[pairs]
    cosines = scores[pairs]
    # Measured: same person >= 0.926, different <= 0.895. dlib descriptors crowd together
    # (different people average 0.80), so the gap is small in cosine terms even when clean.
    assert cosines[same].min() > cosines[~same].max()
