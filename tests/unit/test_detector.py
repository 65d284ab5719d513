"""YuNet on dlib's examples/faces: every labelled face found, and the same output as OpenCV's."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest

from processors.detector import YuNetDetector
from processors.registry import YUNET, model_path
from processors.types import Detection, ImageBGR
from tests.fakes import CountingSession

Box = tuple[float, float, float, float]  # x, y, width, height


@pytest.fixture(scope="module")
def yunet_path(models_dir: Path) -> Path:
    return model_path(YUNET.name, models_dir)


@pytest.fixture(scope="module")
def photos(testdata_dir: Path) -> dict[str, ImageBGR]:
    return {
        f.name: cast(ImageBGR, cv2.imread(str(f)))
        for f in sorted((testdata_dir / "faces").glob("*.jpg"))
    }


@pytest.fixture(scope="module")
def labelled(testdata_dir: Path) -> dict[str, list[Box]]:
    """The hand-drawn face boxes of training.xml and testing.xml, by photo."""
    boxes: dict[str, list[Box]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(testdata_dir / "faces" / name).getroot().iter("image"):
            boxes[image.attrib["file"]] = [
                (
                    float(b.attrib["left"]),
                    float(b.attrib["top"]),
                    float(b.attrib["width"]),
                    float(b.attrib["height"]),
                )
                for b in image.iter("box")
            ]
    return boxes


def _iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _box(face: Detection) -> Box:
    return (face.x, face.y, face.width, face.height)


def _rows(faces: list[Detection]) -> npt.NDArray[np.float64]:
    """Detections as FaceDetectorYN rows: box, ten landmark coordinates, score."""
    return np.array([[*_box(f), *f.landmarks.ravel(), f.score] for f in faces], np.float64).reshape(
        -1, 15
    )


def _opencv(path: Path, image: ImageBGR) -> npt.NDArray[np.float64]:
    """cv2.FaceDetectorYN's rows for `image` at its own size, best score first."""
    reference = cv2.FaceDetectorYN.create(
        str(path), "", (image.shape[1], image.shape[0]), 0.8, 0.3, 5000
    )
    _, faces = reference.detect(image)
    rows = np.zeros((0, 15)) if faces is None else faces.astype(np.float64)
    return rows[np.argsort(-rows[:, 14], kind="stable")]


def test_finds_every_labelled_face_and_nothing_else(
    detector: YuNetDetector, photos: dict[str, ImageBGR], labelled: dict[str, list[Box]]
) -> None:
    assert sum(len(boxes) for boxes in labelled.values()) == 43
    for name, boxes in labelled.items():
        faces = detector.detect(photos[name])
        assert len(faces) == len(boxes), name
        for box in boxes:
            assert max(_iou(box, _box(f)) for f in faces) > 0.3, (name, box)


def test_detections_are_well_formed(detector: YuNetDetector, photos: dict[str, ImageBGR]) -> None:
    faces = detector.detect(photos["bald_guys.jpg"])
    assert len(faces) > 10
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.8
    for face in faces:
        points = face.landmarks
        assert points.shape == (5, 2) and points.dtype == np.float32
        # Upright faces: the right eye (image left) left of the left eye, eyes above the nose,
        # nose above the mouth, mouth corners in the same order; all inside the box.
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]
        assert max(points[0, 1], points[1, 1]) < points[2, 1] < min(points[3, 1], points[4, 1])
        assert (points >= [face.x, face.y]).all()
        assert (points <= [face.x + face.width, face.y + face.height]).all()


def test_decoding_matches_opencv_on_the_same_input(
    detector: YuNetDetector, yunet_path: Path, photos: dict[str, ImageBGR]
) -> None:
    """On the letterboxed frame the model sees, OpenCV's C++ decoding and NMS give the same."""
    for name, image in photos.items():
        canvas, scale = detector.letterbox(image)
        mine = _rows(detector.detect(image))
        mine[:, :14] *= scale
        reference = _opencv(yunet_path, cast(ImageBGR, canvas))
        assert mine.shape == reference.shape, name
        np.testing.assert_allclose(mine, reference, atol=0.01, err_msg=name)


def test_small_images_match_opencv_at_their_own_size(
    detector: YuNetDetector, yunet_path: Path, photos: dict[str, ImageBGR]
) -> None:
    """Images that fit the model are not rescaled: as FaceDetectorYN at the image's size.

    It pads to a multiple of 32 where we pad to the model size, so faces near the right or
    bottom edge move by a pixel or two.
    """
    small = {n: i for n, i in photos.items() if max(i.shape[:2]) <= min(detector.input_size)}
    assert len(small) == 9
    for name, image in small.items():
        mine = _rows(detector.detect(image))
        reference = _opencv(yunet_path, image)
        assert mine.shape == reference.shape, name
        np.testing.assert_allclose(mine[:, :14], reference[:, :14], atol=3, err_msg=name)
        np.testing.assert_allclose(mine[:, 14], reference[:, 14], atol=0.01, err_msg=name)


def test_large_images_are_shrunk_and_mapped_back(
    detector: YuNetDetector, photos: dict[str, ImageBGR]
) -> None:
    # Each pixel of a model-sized photo made 2x2: shrinking by area gives the photo back exactly.
    photo = cast(ImageBGR, cv2.resize(photos["2008_001322.jpg"], detector.input_size))
    large = cast(ImageBGR, photo.repeat(2, axis=0).repeat(2, axis=1))
    canvas, scale = detector.letterbox(large)
    assert scale == 0.5 and (canvas == photo).all()
    faces = detector.detect(photo)
    assert len(faces) == 3
    np.testing.assert_allclose(
        _rows(detector.detect(large))[:, :14], 2 * _rows(faces)[:, :14], atol=1e-3
    )


def test_nothing_in_an_empty_frame(detector: YuNetDetector) -> None:
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect_batch([]) == []


def _dynamic_batch_copy(path: Path, folder: Path) -> Path:
    """The model with its batch dimension left free, as an exporter may write it."""
    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]  # stale intermediate shapes that say batch 1
    copy = folder / "yunet_dynamic_batch.onnx"
    onnx.save(model, str(copy))
    return copy


def test_batch_gives_what_single_images_give(
    detector: YuNetDetector, yunet_path: Path, photos: dict[str, ImageBGR], tmp_path: Path
) -> None:
    images = list(photos.values())[:5]
    one_by_one = [detector.detect(image) for image in images]
    assert detector.batch_fixed  # the file as published

    batched = YuNetDetector(_dynamic_batch_copy(yunet_path, tmp_path))
    assert not batched.batch_fixed
    counting = CountingSession(batched.session)
    batched.session = counting
    results = batched.detect_batch(images)
    assert counting.runs == 1
    for expected, got in zip(one_by_one, results, strict=True):
        np.testing.assert_allclose(_rows(got), _rows(expected), atol=1e-3)
