"""Basic attributes per face: age, gender and expression, from face-api's AgeGenderNet and
FaceExpressionNet (processors.convert.faceapi_attributes).

Both nets read the same input, cut as face-api cuts it (extractFaceTensors, then NetInput's
toBatchTensor(112)): the face box, clipped to the image and floored; padded to a square with
black, centred; resized to 112x112 by tfjs's resizeBilinear (no half-pixel centres). The crop
stays float32: rounded to bytes, it moves ages by up to 0.7 years (measured on 179 faces).

The box may be the detector's, or, nearer face-api's own pipeline, `aligned_box` of the face's
68 points (processors.landmarks68).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from processors.errors import ProcessingError
from processors.landmarks68 import Landmarks68
from processors.session import create_session
from processors.types import EXPRESSIONS, GENDERS, Detection, FaceAttributes, ImageBGR

INPUT_SIZE = 112
Crop = npt.NDArray[np.float32]  # INPUT_SIZE x INPUT_SIZE x 3, RGB 0-255


def face_crop(image: ImageBGR, detection: Detection) -> Crop:
    """The nets' input for the face in `detection`'s box, as face-api.js builds it."""
    height, width = image.shape[:2]
    left, top = max(detection.x, 0.0), max(detection.y, 0.0)
    right, bottom = detection.x + detection.width, detection.y + detection.height
    x, y = math.floor(left), math.floor(top)
    w = math.floor(min(right - left, width - left))
    h = math.floor(min(bottom - top, height - top))
    if w <= 0 or h <= 0:
        raise ProcessingError(
            f"face box at ({detection.x}, {detection.y}) is outside the {width}x{height} image"
        )
    face = image[y : y + h, x : x + w, ::-1].astype(np.float32)
    # padToSquare(centred): round(half) of the difference after, the rest before.
    after = (abs(h - w) + 1) // 2  # Math.round(difference / 2): halves go up
    before = abs(h - w) - after
    pads = ((before, after), (0, 0)) if w > h else ((0, 0), (before, after))
    square = np.pad(face, (*pads, (0, 0)))
    return _resize_bilinear(square, INPUT_SIZE)


def aligned_box(detection: Detection, points: Landmarks68) -> Detection:
    """face-api's alignedRect, the box its full pipeline crops: the 68 points' bounding box
    grown by 20 % of its width and height. Measured on 52 faces against face-api.js's own
    pipeline (SSD boxes, its 68 points), ages from this box differ by 1.7 years on average
    (at most 4.0), from YuNet's box by 3.0 (at most 12.6)."""
    low, high = points.min(axis=0), points.max(axis=0)
    width, height = (float(v) for v in high - low)
    x, y = float(low[0]) - 0.1 * width, float(low[1]) - 0.1 * height
    return replace(detection, x=x, y=y, width=1.2 * width, height=1.2 * height)


def _resize_bilinear(square: npt.NDArray[np.float32], size: int) -> Crop:
    """tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false) of a square."""
    side = square.shape[0]
    if side == size:
        return square
    src = np.arange(size, dtype=np.float32) * np.float32(side / size)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, side - 1)
    frac = (src - low)[:, None]
    rows = square[low] + (square[high] - square[low]) * frac[:, :, None]
    out = rows[:, low] + (rows[:, high] - rows[:, low]) * frac[None]
    return cast(Crop, out.astype(np.float32))


def _batch(crops: list[Crop]) -> npt.NDArray[np.float32]:
    batch = np.stack(crops).astype(np.float32, copy=False)
    if batch.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ProcessingError(f"attribute crops have shape {batch.shape[1:]}")
    return batch


class AgeGenderNet:
    """Age in years and the probabilities of GENDERS, one row per crop."""

    def __init__(self, model_path: Path | str, *, threads: int | None = None) -> None:
        self.session = create_session(model_path, threads=threads)

    def estimate(
        self, crops: list[Crop]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        if not crops:
            return np.empty(0, np.float32), np.empty((0, len(GENDERS)), np.float32)
        age, gender = self.session.run(["age", "gender"], {"input": _batch(crops)})
        return age.astype(np.float32), gender.astype(np.float32)


class ExpressionNet:
    """The probabilities of EXPRESSIONS, one row per crop."""

    def __init__(self, model_path: Path | str, *, threads: int | None = None) -> None:
        self.session = create_session(model_path, threads=threads)

    def estimate(self, crops: list[Crop]) -> npt.NDArray[np.float32]:
        if not crops:
            return np.empty((0, len(EXPRESSIONS)), np.float32)
        (scores,) = self.session.run(["expressions"], {"input": _batch(crops)})
        return cast(npt.NDArray[np.float32], scores.astype(np.float32))


class FaceApiAttributes:
    """Both nets over the same crops (types.AttributeEstimator)."""

    def __init__(self, age_gender: AgeGenderNet, expression: ExpressionNet) -> None:
        self.age_gender = age_gender
        self.expression = expression

    def crop(self, image: ImageBGR, detection: Detection) -> Crop:
        return face_crop(image, detection)

    def estimate(self, crops: list[Crop]) -> list[FaceAttributes]:
        ages, genders = self.age_gender.estimate(crops)
        expressions = self.expression.estimate(crops)
        results = []
        for age, gender, scores in zip(ages, genders, expressions, strict=True):
            index = int(np.argmax(gender))  # face-api: male when P(male) > 0.5
            results.append(
                FaceAttributes(
                    age=float(age),
                    gender=GENDERS[index],
                    gender_probability=float(gender[index]),
                    expressions={
                        name: float(v) for name, v in zip(EXPRESSIONS, scores, strict=True)
                    },
                )
            )
        return results
