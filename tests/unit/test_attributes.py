"""face-api's age/gender and expression nets, converted, on the project's real photos.

- The converted graphs and face_crop reproduce face-api.js 1.7.15 itself (AgeGenderNet and
  FaceExpressionNet.forwardInput on extractFaceTensors(image, [box]), run once under Node with
  tfjs's cpu backend): the golden values below. Measured over 179 faces (the johns, dlib's
  examples/faces and astronaut.png, YuNet's boxes): age within 1e-4 years, probabilities within
  6e-6.
- Gender on the labelled photos: the johns are five men, astronaut.png is Eileen Collins.
- Not verifiable here: age (no photo's date, so no true age, is known) and expressions (no labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2
import numpy as np
import pytest

from processors.attributes import AgeGenderNet, ExpressionNet, FaceApiAttributes, aligned_box
from processors.detector import YuNetDetector
from processors.registry import AGE_GENDER, EXPRESSION, model_path
from processors.types import EXPRESSIONS, Detection, ImageBGR

# (photo, face box x, y, width, height) -> face-api.js's age, P(male), expression probabilities.
# The boxes: a whole johns chip (a plain resize), YuNet's box on astronaut.png (padded to a
# square), and one past the image's left edge (clipped).
GOLDEN = [
    (
        ("johns/John_Salley/000179_02159509.jpg", (0, 0, 150, 150)),
        (38.4877, 0.981176, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ),
    (
        ("johns/John_Simm/000288_00470387.jpg", (0, 0, 150, 150)),
        (39.1427, 0.944212, [0.99763, 0.000207, 0.000584, 2.4e-05, 0.0, 0.0, 0.001553]),
    ),
    (
        ("astronaut.png", (178.04, 62.56, 90.38, 113.86)),
        (30.3945, 0.218428, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ),
    (
        ("astronaut.png", (-20.7, 60.5, 330.2, 240.9)),
        (39.4427, 0.746293, [0.032595, 0.01947, 0.792608, 0.030186, 0.078771, 0.005685, 0.040685]),
    ),
]
BORDER = 75  # the johns are tight 150x150 chips: YuNet needs context around a face


@pytest.fixture(scope="module")
def attributes(models_dir: Path) -> FaceApiAttributes:
    return FaceApiAttributes(
        AgeGenderNet(model_path(AGE_GENDER.name, models_dir), threads=1),
        ExpressionNet(model_path(EXPRESSION.name, models_dir), threads=1),
    )


def _box(x: float, y: float, width: float, height: float) -> Detection:
    return Detection(x, y, width, height, 1.0, np.zeros((5, 2), np.float32))


def test_the_graphs_compute_what_face_api_does(
    testdata_dir: Path, attributes: FaceApiAttributes
) -> None:
    crops = [
        attributes.crop(cast(ImageBGR, cv2.imread(str(testdata_dir / photo))), _box(*box))
        for (photo, box), _ in GOLDEN
    ]
    ages, genders = attributes.age_gender.estimate(crops)
    expressions = attributes.expression.estimate(crops)
    np.testing.assert_allclose(ages, [want[0] for _, want in GOLDEN], atol=1e-3)
    np.testing.assert_allclose(genders[:, 0], [want[1] for _, want in GOLDEN], atol=2e-5)
    np.testing.assert_allclose(expressions, [want[2] for _, want in GOLDEN], atol=2e-5)


def test_gender_on_labelled_photos(
    testdata_dir: Path, detector: YuNetDetector, attributes: FaceApiAttributes
) -> None:
    files = sorted((testdata_dir / "johns").glob("*/*.jpg"))
    assert len(files) == 55
    crops = []
    for file in files:
        chip = cast(ImageBGR, cv2.imread(str(file)))
        framed = cv2.copyMakeBorder(chip, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_REPLICATE)
        image = cast(ImageBGR, framed)
        crops.append(attributes.crop(image, detector.detect(image)[0]))
    astronaut = cast(ImageBGR, cv2.imread(str(testdata_dir / "astronaut.png")))
    (face,) = detector.detect(astronaut)
    crops.append(attributes.crop(astronaut, face))
    found = attributes.estimate(crops)
    # Measured: all 55 men as male (P 0.88-1.00), Eileen Collins as female (P 0.78).
    assert [f.gender for f in found] == ["male"] * 55 + ["female"]
    assert all(0.5 <= f.gender_probability <= 1 for f in found)
    assert all(list(f.expressions) == list(EXPRESSIONS) for f in found)
    assert all(abs(sum(f.expressions.values()) - 1) < 1e-5 for f in found)
    # Age cannot be checked without the photos' dates; only that it is an adult's.
    assert all(18 < f.age < 80 for f in found)


def test_no_faces_no_run(attributes: FaceApiAttributes) -> None:
    assert attributes.estimate([]) == []


def test_aligned_box_is_face_apis_aligned_rect() -> None:
    points = np.array([[10, 20], [60, 20], [35, 120]] * 23, np.float32)[:68]
    box = aligned_box(_box(0, 0, 1, 1), points)
    assert (box.x, box.y, box.width, box.height) == pytest.approx((5, 10, 60, 120))
