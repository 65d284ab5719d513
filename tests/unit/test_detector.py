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

from processors.detector import COARSE_SIZE, REFINE_MAX_FACE, YuNetDetector, refine_regions
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


def _eye_distance_errors(
    mine: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]
) -> list[float]:
    """For each of our faces, the mean landmark distance to the reference face it overlaps
    most, in % of that face's eye distance."""
    errors = []
    for row in mine:
        best = max(reference, key=lambda ref: _iou(tuple(row[:4]), tuple(ref[:4])))
        assert _iou(tuple(row[:4]), tuple(best[:4])) > 0.5
        points, expected = row[4:14].reshape(5, 2), best[4:14].reshape(5, 2)
        eyes = float(np.linalg.norm(expected[1] - expected[0]))
        errors.append(float(np.linalg.norm(points - expected, axis=1).mean()) / eyes * 100)
    return errors


def test_images_up_to_640_px_match_opencv_at_their_own_size(
    detector: YuNetDetector, yunet_path: Path, photos: dict[str, ImageBGR]
) -> None:
    """Run as FaceDetectorYN runs: at the image's size padded to 32, not on a 640 canvas
    (which moved points by ~2 % of the eye distance)."""
    small = {n: i for n, i in photos.items() if max(i.shape[:2]) <= COARSE_SIZE}
    assert len(small) == 9
    for name, image in small.items():
        mine = _rows(detector.detect(image))
        reference = _opencv(yunet_path, image)
        assert mine.shape == reference.shape, name
        np.testing.assert_allclose(mine, reference, atol=0.01, err_msg=name)


def test_large_images_have_the_landmarks_of_a_full_size_run(
    detector: YuNetDetector, yunet_path: Path, photos: dict[str, ImageBGR]
) -> None:
    """Found on a shrunk copy, placed by a native-scale pass: FaceDetectorYN's points at the
    image's own size (the shrunk copy's were 9 % of the eye distance off, up to 20 %)."""
    large = {n: i for n, i in photos.items() if max(i.shape[:2]) > COARSE_SIZE}
    assert sorted(large) == ["Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg", "dogs.jpg"]
    counts = {}
    for name, image in large.items():
        mine = _rows(detector.detect(image))
        reference = _opencv(yunet_path, image)
        counts[name] = (len(mine), len(reference))
        if len(mine):
            assert max(_eye_distance_errors(mine, reference)) < 0.5, name
            assert (mine[:, 14] >= 0.8).all(), name
    # The dog scores 0.86 shrunk and 0.78 at full size: dropped, as FaceDetectorYN drops it.
    assert counts == {
        "Tom_Cruise_avp_2014_4.jpg": (1, 1),
        "bald_guys.jpg": (24, 24),
        "dogs.jpg": (0, 0),
    }


def test_large_images_are_shrunk_to_find_faces(photos: dict[str, ImageBGR]) -> None:
    # Each pixel of a 640x480 photo made 2x2: shrinking by area gives the photo back exactly.
    photo = cast(ImageBGR, cv2.resize(photos["2008_001322.jpg"], (640, 480)))
    large = cast(ImageBGR, photo.repeat(2, axis=0).repeat(2, axis=1))
    frame, scale = YuNetDetector.coarse_frame(large)
    assert scale == 0.5 and (frame == photo).all()
    assert YuNetDetector.coarse_frame(photo) == (photo, 1.0)


def test_a_lone_face_in_a_large_frame_refines_on_a_grid_aligned_crop(
    detector: YuNetDetector, yunet_path: Path, photos: dict[str, ImageBGR]
) -> None:
    """One face in a 2000x1500 frame: the fine pass runs on a crop around it, not the frame."""
    frame = np.full((1500, 2000, 3), 90, np.uint8)
    photo = photos["2008_001322.jpg"]  # 500x375, three faces
    frame[700 : 700 + photo.shape[0], 1100 : 1100 + photo.shape[1]] = photo
    counting = CountingSession(detector.session)
    detector.session = counting
    try:
        faces = detector.detect(frame)
    finally:
        detector.session = counting.inner
    shapes = [shape[2:] for shape, _ in counting.batches]
    # The shrunk frame (640x480), then one crop of at least 640 px around the three faces.
    assert shapes[0] == (480, 640) and len(shapes) == 2
    assert min(shapes[1]) >= 640 and max(shapes[1]) < 1500
    reference = _opencv(yunet_path, frame)
    assert len(faces) == len(reference) == 3
    assert max(_eye_distance_errors(_rows(faces), reference)) < 0.5


@pytest.mark.parametrize("factor", [1.5, 2.0, 3.0])
def test_a_face_too_wide_for_a_native_pass_keeps_its_coarse_detection(
    detector: YuNetDetector, photos: dict[str, ImageBGR], factor: float
) -> None:
    """A selfie-sized face: at its own scale YuNet misses it (so does cv2.FaceDetectorYN), the
    shrunk pass finds it; it must not be lost."""
    tom = photos["Tom_Cruise_avp_2014_4.jpg"]  # face 414 px wide
    large = cast(ImageBGR, cv2.resize(tom, None, fx=factor, fy=factor))
    (face,) = detector.detect(large)
    assert face.width > REFINE_MAX_FACE and face.score >= 0.8
    assert abs(face.width / (414 * factor) - 1) < 0.25


def test_refine_regions_sit_on_the_grid_merge_and_give_way_to_a_full_run() -> None:
    def face(x: float, y: float, side: float) -> Detection:
        return Detection(x, y, side, side, 0.9, np.zeros((5, 2), np.float32))

    (region,) = refine_regions(4000, 3000, [face(1000, 1000, 100)])
    assert region == (704, 704, 1376, 1376)  # 640 px around the face's centre, on the grid
    two = refine_regions(4000, 3000, [face(1000, 1000, 100), face(3000, 2000, 100)])
    assert len(two) == 2 and all(v % 32 == 0 for r in two for v in r)
    (merged,) = refine_regions(4000, 3000, [face(1000, 1000, 100), face(1300, 1100, 100)])
    assert merged == (704, 704, 1696, 1472)
    # At the image's edge a crop ends where the image does: its padding is the full run's.
    (edge,) = refine_regions(1990, 1500, [face(1900, 1400, 80)])
    assert edge[2:] == (1990, 1500)
    # 3x a 300 px face: a 928x800 crop of a 1000x800 image, so the whole image.
    assert refine_regions(1000, 800, [face(300, 200, 300)]) == [(0, 0, 1000, 800)]


def test_nothing_in_an_empty_frame(detector: YuNetDetector) -> None:
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect_batch([]) == []


def _dynamic_batch_copy(path: Path, folder: Path) -> Path:
    """The model with its batch dimension left free, as an exporter may write it."""
    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    copy = folder / "yunet_dynamic_batch.onnx"
    onnx.save(model, str(copy))
    return copy


def test_batch_gives_what_single_images_give(
    detector: YuNetDetector, yunet_path: Path, photos: dict[str, ImageBGR], tmp_path: Path
) -> None:
    """Images of one padded size share a run; padding them to one size would move points."""
    images = list(photos.values())[:5]
    one_by_one = [detector.detect(image) for image in images]
    assert detector.batch_fixed  # the file as published

    batched = YuNetDetector(_dynamic_batch_copy(yunet_path, tmp_path))
    assert not batched.batch_fixed
    counting = CountingSession(batched.session)
    batched.session = counting
    results = batched.detect_batch(images)
    sizes = {tuple(-(-n // 32) * 32 for n in image.shape[:2]) for image in images}
    assert counting.runs == len(sizes) == 3
    for expected, got in zip(one_by_one, results, strict=True):
        np.testing.assert_allclose(_rows(got), _rows(expected), atol=1e-3)


def test_a_fixed_size_file_stops_the_detector_with_the_pull_hint(
    yunet_path: Path, tmp_path: Path
) -> None:
    """A models folder converted before the sizes were freed: refused at start, not mid-stream."""
    model = onnx.load(str(yunet_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 640, 640
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    with pytest.raises(ValueError, match=r"fixed at 640x640.*run `facestream models pull`"):
        YuNetDetector(tmp_path / "fixed.onnx")
