"""Descriptor version 1 (SFace) on dlib's examples/johns: 5 people x 11 face images."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest

from processors.align import warp
from processors.detector import YuNetDetector
from processors.extract_sface import SFaceExtractor
from processors.registry import SFACE, model_path
from processors.types import Detection, ImageBGR
from tests.fakes import CountingSession

# The johns are tight 150x150 crops: framed in black, the detector sees the context it needs
# to place the five points steadily.
BORDER = 75


@pytest.fixture(scope="module")
def sface_path(models_dir: Path) -> Path:
    return model_path(SFACE.name, models_dir)


@pytest.fixture(scope="module")
def extractor(sface_path: Path) -> SFaceExtractor:
    return SFaceExtractor(sface_path)


@pytest.fixture(scope="module")
def reference(sface_path: Path) -> cv2.FaceRecognizerSF:
    return cv2.FaceRecognizerSF.create(str(sface_path), "")


@pytest.fixture(scope="module")
def johns(
    testdata_dir: Path, detector: YuNetDetector
) -> tuple[list[ImageBGR], list[Detection], npt.NDArray[np.str_]]:
    """Each framed image, its one detected face, and its person (the folder)."""
    files = sorted((testdata_dir / "johns").glob("*/*.jpg"))
    assert len(files) == 55
    images, faces = [], []
    for f in files:
        chip = cast(ImageBGR, cv2.imread(str(f)))
        framed = cv2.copyMakeBorder(chip, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT)
        image = cast(ImageBGR, framed)
        (face,) = detector.detect(image)
        images.append(image)
        faces.append(face)
    return images, faces, np.array([f.parent.name for f in files])


@pytest.fixture(scope="module")
def samples(johns: tuple[list[ImageBGR], list[Detection], npt.NDArray[np.str_]]) -> list[ImageBGR]:
    return [warp(image, face.landmarks) for image, face in zip(*johns[:2], strict=True)]


@pytest.fixture(scope="module")
def descriptors(extractor: SFaceExtractor, samples: list[ImageBGR]) -> npt.NDArray[np.float32]:
    return extractor.extract(samples)


def _unit(vector: npt.ArrayLike) -> npt.NDArray[np.float32]:
    flat = np.asarray(vector, np.float32).ravel()
    return flat / np.linalg.norm(flat)


def test_descriptors_are_unit_rows(descriptors: npt.NDArray[np.float32]) -> None:
    assert descriptors.shape == (55, SFaceExtractor.dimension) and descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1, atol=1e-5)


def test_same_person_always_beats_different_people(
    descriptors: npt.NDArray[np.float32],
    johns: tuple[list[ImageBGR], list[Detection], npt.NDArray[np.str_]],
) -> None:
    people = johns[2]
    similarity = descriptors @ descriptors.T
    pairs = np.triu_indices(len(people), 1)
    same = (people[:, None] == people[None, :])[pairs]
    lowest_same, highest_different = similarity[pairs][same].min(), similarity[pairs][~same].max()
    assert lowest_same > highest_different
    # OpenCV's published threshold for SFace separates them too.
    assert lowest_same > 0.363 > highest_different


def test_matches_opencv_on_the_same_crop(
    extractor: SFaceExtractor,
    reference: cv2.FaceRecognizerSF,
    samples: list[ImageBGR],
    descriptors: npt.NDArray[np.float32],
) -> None:
    for sample, descriptor in zip(samples, descriptors, strict=True):
        crop = cv2.cvtColor(extractor.preprocess(sample), cv2.COLOR_RGB2BGR)  # cv2 swaps itself
        assert crop.shape == (112, 112, 3)
        assert float(descriptor @ _unit(reference.feature(crop))) > 0.9999


def test_close_to_opencv_aligning_itself(
    reference: cv2.FaceRecognizerSF,
    johns: tuple[list[ImageBGR], list[Detection], npt.NDArray[np.str_]],
    descriptors: npt.NDArray[np.float32],
) -> None:
    """cv2 warps straight to 112x112; we warp to the shared sample, then crop and shrink it."""
    similarities = []
    for image, face, descriptor in zip(*johns[:2], descriptors, strict=True):
        row = np.array([[face.x, face.y, face.width, face.height, *face.landmarks.ravel(), 1]])
        aligned = reference.alignCrop(image, row.astype(np.float32))
        similarities.append(float(descriptor @ _unit(reference.feature(aligned))))
    assert np.mean(similarities) > 0.99 and min(similarities) > 0.98


def test_one_run_per_batch_when_the_graph_takes_batches(
    extractor: SFaceExtractor,
    sface_path: Path,
    samples: list[ImageBGR],
    descriptors: npt.NDArray[np.float32],
    tmp_path: Path,
) -> None:
    assert extractor.batch_fixed  # the file as published: one face per run
    model = onnx.load(str(sface_path))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, str(tmp_path / "sface_dynamic_batch.onnx"))
    batched = SFaceExtractor(tmp_path / "sface_dynamic_batch.onnx")
    assert not batched.batch_fixed
    counting = CountingSession(batched.session)
    batched.session = counting
    np.testing.assert_allclose(batched.extract(samples[:16]), descriptors[:16], atol=1e-5)
    assert counting.runs == 1


def test_edge_cases(extractor: SFaceExtractor) -> None:
    assert extractor.extract([]).shape == (0, 128)
    with pytest.raises(ValueError, match="250x250"):
        extractor.extract([np.zeros((112, 112, 3), np.uint8)])
