"""Face quality calibrated on real photos and degraded copies of them (processors.quality),
and its use: the enrollment's score_threshold, the deployment's minimum, liveness quality.

The faces: every face YuNet finds in dlib's johns/ and faces/ (not dogs.jpg) and astronaut.png.
"Sharp" faces are those with 50 px or more between the eyes; each degradation is applied to the
whole image and the face measured where it was found in the original.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from processors import align
from processors.detector import YuNetDetector
from processors.errors import ProcessingError
from processors.quality import FaceQuality, estimate, face_region
from processors.types import Detection, ImageBGR
from streams.api.faces import choose
from streams.api.shapes import FacesQuery
from streams.models.modelset import ModelSet
from streams.settings import DetectionSettings, Settings
from streams.worker.testing import InMemoryPipeline
from tests.unit.test_stages import image

Face = tuple[str, ImageBGR, Detection]


@pytest.fixture(scope="module")
def faces(testdata_dir: Path, detector: YuNetDetector) -> list[Face]:
    files = [
        *sorted((testdata_dir / "johns").glob("*/*.jpg")),
        *sorted(p for p in (testdata_dir / "faces").glob("*.jpg") if p.name != "dogs.jpg"),
        testdata_dir / "astronaut.png",
    ]
    found = []
    for path in files:
        image = np.asarray(cv2.imread(str(path)), np.uint8)
        found += [(path.name, image, d) for d in detector.detect(image)]
    return found


@pytest.fixture(scope="module")
def sharp(faces: list[Face]) -> list[Face]:
    return [f for f in faces if align.eye_distance(f[2].landmarks) >= 50]


def _jpeg(image: ImageBGR, quality: int) -> ImageBGR:
    _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), np.uint8)


def _blur(image: ImageBGR, sigma: float) -> ImageBGR:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.uint8)


def _face_mean(image: ImageBGR, detection: Detection) -> float:
    return float(face_region(image, detection.landmarks)[2].mean())


def _dark(image: ImageBGR, detection: Detection) -> ImageBGR:
    """The face's mean luma scaled down to 35."""
    gain = 35.0 / _face_mean(image, detection)
    return np.clip(image * gain, 0, 255).astype(np.uint8)


def _light(image: ImageBGR, detection: Detection) -> ImageBGR:
    """The face's distance from white scaled down to 30 (mean luma 225)."""
    gain = 30.0 / (255.0 - _face_mean(image, detection))
    return np.clip(255.0 - (255.0 - image.astype(np.float64)) * gain, 0, 255).astype(np.uint8)


def _measure(faces: list[Face], change: Callable[[ImageBGR, Detection], ImageBGR]) -> list[float]:
    return [estimate(change(image, d), d).overall for _, image, d in faces]


def _shrink(image: ImageBGR, detection: Detection) -> FaceQuality:
    """The face downscaled to 36 px between the eyes, measured where it now lies."""
    scale = 36.0 / align.eye_distance(detection.landmarks)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    moved = Detection(
        detection.x * scale,
        detection.y * scale,
        detection.width * scale,
        detection.height * scale,
        detection.score,
        detection.landmarks * scale,
    )
    return estimate(np.asarray(small, np.uint8), moved)


def test_sharp_well_lit_faces_pass(sharp: list[Face]) -> None:
    # Measured: 76 faces, mean 0.99; all over 0.9 but one: 0.21, a man out of focus in
    # bald_guys.jpg, whose sharpness is near that of the others blurred at sigma 3.
    scores = _measure(sharp, lambda image, _: image)
    assert len(scores) == 76
    assert sum(s >= 0.8 for s in scores) == 75
    low = [name for (name, _, _), s in zip(sharp, scores, strict=True) if s < 0.8]
    assert low == ["bald_guys.jpg"]


@pytest.mark.parametrize(
    ("condition", "change"),
    [
        ("blur sigma 3", lambda image, _: _blur(image, 3)),
        # So blurred that only 8-bit rounding steps are left, which must not read as detail.
        ("blur sigma 20", lambda image, _: _blur(image, 20)),
        ("jpeg quality 10", lambda image, _: _jpeg(image, 10)),
        ("jpeg quality 3", lambda image, _: _jpeg(image, 3)),
        ("under-exposed", _dark),
        ("over-exposed", _light),
    ],
)
def test_degraded_faces_fail(
    sharp: list[Face], condition: str, change: Callable[[ImageBGR, Detection], ImageBGR]
) -> None:
    scores = _measure(sharp, change)
    assert sum(s < 0.5 for s in scores) == len(sharp) == 76, condition


def test_small_faces_fail(faces: list[Face], sharp: list[Face]) -> None:
    # The photos' own small faces and the sharp ones shrunk to 36 px between the eyes.
    small = [f for f in faces if align.eye_distance(f[2].landmarks) < 40]
    assert len(small) == 41
    assert all(s < 0.5 for s in _measure(small, lambda image, _: image))
    shrunk = [_shrink(image, d) for _, image, d in sharp]
    assert sum(q.overall < 0.5 for q in shrunk) == 76
    assert all(q.resolution < 0.5 for q in shrunk)


def test_parts_name_the_failure(sharp: list[Face]) -> None:
    _, image, face = sharp[0]
    blurred = estimate(_blur(image, 4), face)
    assert blurred.blur < 0.5 and blurred.overall == blurred.blur
    dark = estimate(_dark(image, face), face)
    assert dark.dark < 0.5 and dark.light == 1.0
    assert "blur 0." in blurred.describe() and blurred.describe().startswith("overall 0.")


def test_a_dogs_face_is_not_a_good_face(testdata_dir: Path, detector: YuNetDetector) -> None:
    photo = np.asarray(cv2.imread(str(testdata_dir / "faces" / "dogs.jpg")), np.uint8)
    threshold, detector.score_threshold = detector.score_threshold, 0.5
    try:
        found = detector.detect(photo)
    finally:
        detector.score_threshold = threshold
    qualities = [estimate(photo, d) for d in found]
    assert qualities and all(q.overall < 0.5 and q.faceness < 0.5 for q in qualities)


@pytest.fixture(scope="module")
def tom(testdata_dir: Path) -> Path:
    return testdata_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg"


def test_enrollment_score_threshold_is_the_quality(tom: Path, detector: YuNetDetector) -> None:
    photo = np.asarray(cv2.imread(str(tom)), np.uint8)
    blurred = _blur(photo, 3)
    found = detector.detect(photo)
    assert len(choose(FacesQuery(score_threshold=0.9), photo, found, 0.0)) == 1
    assert len(choose(FacesQuery(), blurred, found, 0.0)) == 1  # no threshold: kept
    for query, minimum in ((FacesQuery(score_threshold=0.5), 0.0), (FacesQuery(), 0.5)):
        with pytest.raises(ProcessingError) as refused:
            choose(query, blurred, found, minimum)
        assert refused.value.code == "low_quality"
        assert "no face reaches quality 0.5; the best: overall 0.00 (blur 0.00, dark 1.00" in (
            refused.value.message
        )


def test_a_minimum_quality_refuses_images_in_the_pipeline(models_dir: Path, tom: Path) -> None:
    pipeline = InMemoryPipeline(
        ModelSet(models_dir), Settings(detection=DetectionSettings(min_quality=0.5))
    )
    blurred = _jpeg_bytes(_blur(np.asarray(cv2.imread(str(tom)), np.uint8), 3))
    sent = [image(tom.read_bytes()), image(blurred)]
    events = {e["context"]["event_id"]: e for e in pipeline.send(sent)}
    good, bad = (events[record["context"]["event_id"]] for record in sent)
    assert (good["status"], bad["status"]) == ("ok", "error")
    assert bad["error_code"] == "low_quality" and "blur 0.00" in str(bad["error_message"])
    (face,) = good["faces"]
    liveness = face["liveness"]
    assert liveness is not None
    parts = liveness["quality_parts"]
    assert sorted(parts) == sorted(FaceQuality.__slots__)
    assert liveness["quality"] == pytest.approx(min(parts.values()))
    assert liveness["quality"] >= 0.9


def _jpeg_bytes(image: ImageBGR) -> bytes:
    return bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])


def test_an_image_may_ask_for_a_minimum_quality_of_its_own(models_dir: Path, tom: Path) -> None:
    """POST /v1/images?min_quality= (the Image record's min_quality), over the deployment's."""
    pipeline = InMemoryPipeline(ModelSet(models_dir), Settings())  # detection.min_quality 0
    blurred = _jpeg_bytes(_blur(np.asarray(cv2.imread(str(tom)), np.uint8), 3))
    asks = [None, 0.5, 0.95]
    sent = [image(tom.read_bytes()) | {"min_quality": m} for m in asks]
    sent += [image(blurred) | {"min_quality": m} for m in asks]
    events = {e["context"]["event_id"]: e for e in pipeline.send(sent)}
    outcomes = [events[r["context"]["event_id"]]["error_code"] for r in sent]
    assert outcomes == [None, None, None, None, "low_quality", "low_quality"]
