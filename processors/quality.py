"""Face image quality for recognition: what in the photo makes a descriptor unreliable.

Every part is in [0, 1], 1 meaning no problem, and is measured on the original image in its own
pixels (blur and JPEG blocks are properties of those pixels; a downscaled crop hides both), in
the face region the five landmarks span. `overall` is the worst part: a face blurred beyond use
is not rescued by being well lit. Each part crosses 0.5 at the limit the project calls too poor
to enroll (calibrated in tests/unit/test_quality.py on dlib's and scikit-image's real photos
with degraded copies):

- blur: the fine detail left in the face (`sharpness`), 0 at 0.10, 1 from 0.15: the test faces
  measure 0.156 and more (but one, out of focus), blurred at sigma 3 or more 0.11 at most.
- dark / light: the face's mean luma, 0.5 at 42 and at 213 (of 255).
- resolution: the distance between the eye centres, 0.5 at 40 px, 1 from 50 px.
- blockiness: the luma steps across JPEG's 8x8 block edges against those inside the blocks,
  0.5 at a ratio of 2 (JPEG quality 10 measures 2.1 and more, the originals 1.4 at most).
- pose: the larger of |yaw| and |pitch| (processors.pose.five_point), 0.5 at 50 degrees.
- faceness: the detector's score, 0.5 at 0.83 (the test faces of 50 px and more score 0.89
  or more). Of what was measured on a dog's face (dlib's dogs.jpg, score 0.78) against the
  human test faces, only this separates it: SFace's descriptor norm before normalisation (dog
  9.3, humans 6.6-14.4), the liveness models (dog 0.87) and the five points' proportions
  (eye-mouth height and mouth width over eye distance) do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from processors import align, pose
from processors.errors import ProcessingError
from processors.types import Detection, ImageBGR

Luma = npt.NDArray[np.float32]

_BLUR_TAPS = 9  # the re-blur of Crete-Roffet's metric
_BLOCK = 8  # JPEG's block side, on the image's own grid
_NOISE = 2.0  # luma steps this small are rounding and sensor noise, not detail


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at `bad`, 1 at `good`, linear between (either may be the larger)."""
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """Each part in [0, 1], 1 = no problem; `overall` is the lowest of them."""

    blur: float
    dark: float
    light: float
    resolution: float
    blockiness: float
    pose: float
    faceness: float

    @property
    def overall(self) -> float:
        return min(self.parts().values())

    def parts(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}

    def describe(self) -> str:
        """`overall 0.31 (blur 0.31, dark 1.00, ...)`, for error messages and logs."""
        parts = ", ".join(f"{name} {value:.2f}" for name, value in self.parts().items())
        return f"overall {self.overall:.2f} ({parts})"


def face_region(image: ImageBGR, landmarks: npt.NDArray[np.float32]) -> tuple[int, int, Luma]:
    """(x0, y0, luma) of the square about the five points, 1.6 eye distances wide: eyes,
    nose, mouth and cheeks, little hair or background. Clipped to the image."""
    centre = landmarks.astype(np.float64).mean(axis=0)
    half = 0.8 * max(align.eye_distance(landmarks), 4.0)
    height, width = image.shape[:2]
    cx, cy = (float(c) for c in centre)
    x0, y0 = max(round(cx - half), 0), max(round(cy - half), 0)
    x1, y1 = min(round(cx + half), width), min(round(cy + half), height)
    patch = image[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    luma = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_BGR2GRAY).astype(np.float32)
    return x0, y0, luma


def sharpness(luma: Luma) -> float:
    """The geometric mean of two measures of the finest detail left, each 0 for a flat patch:
    Crete-Roffet's (the share of the luma's steps a further 9-pixel blur removes, on the axis
    that loses least) and the RMS of the 4-neighbour Laplacian over the RMS gradient of the
    patch blurred at sigma 2 (pixel-scale detail against face-scale structure). Neither alone
    separates the test photos' soft faces from sharp ones blurred at sigma 3. Steps and
    Laplacian responses count only beyond _NOISE: a heavily blurred face is all 8-bit rounding
    steps, which a blur removes too, and would otherwise read as sharp."""
    shares = []
    for axis in (0, 1):
        kernel = (1, _BLUR_TAPS) if axis == 1 else (_BLUR_TAPS, 1)
        steps = np.maximum(np.abs(np.diff(luma, axis=axis)) - _NOISE, 0)
        kept = np.maximum(np.abs(np.diff(cv2.blur(luma, kernel), axis=axis)) - _NOISE, 0)
        total = float(steps.sum())
        shares.append(float(np.maximum(steps - kept, 0).sum()) / total if total > 0 else 0.0)
    laplacian = np.abs(cv2.Laplacian(luma, cv2.CV_32F, ksize=1))
    fine = float(np.mean(np.maximum(laplacian - 2 * _NOISE, 0) ** 2))
    smooth = cv2.GaussianBlur(luma, (0, 0), 2.0)
    coarse = float(np.mean(cv2.Sobel(smooth, cv2.CV_32F, 1, 0) ** 2))
    coarse += float(np.mean(cv2.Sobel(smooth, cv2.CV_32F, 0, 1) ** 2))
    detail = np.sqrt(fine / coarse) if coarse > 0 else 0.0
    return float(np.sqrt(min(shares) * detail))


def block_ratio(luma: Luma, x0: int, y0: int) -> float:
    """Mean luma step across the image's 8-pixel grid lines over the mean step elsewhere:
    about 1 for any photo, higher the more JPEG flattened each block."""
    ratios = []
    for axis, origin in ((1, x0), (0, y0)):
        steps = np.abs(np.diff(luma, axis=axis)).mean(axis=1 - axis)
        if len(steps) < 2 * _BLOCK:
            return 1.0
        # steps[i] is between pixels origin+i and origin+i+1: a block edge after pixel 7 mod 8.
        edge = (origin + np.arange(len(steps))) % _BLOCK == _BLOCK - 1
        inside = float(steps[~edge].mean())
        ratios.append(float(steps[edge].mean()) / inside if inside > 0 else 1.0)
    return max(ratios)


def estimate(image: ImageBGR, detection: Detection) -> FaceQuality:
    """The quality of one detected face of `image` (BGR, as decoded)."""
    landmarks = detection.landmarks
    x0, y0, luma = face_region(image, landmarks)
    angles = pose.five_point(detection)  # cheap, for a quality; pose.PoseEstimator measures
    mean = float(luma.mean())
    return FaceQuality(
        blur=_ramp(sharpness(luma), 0.10, 0.15),
        dark=_ramp(mean, 25.0, 60.0),
        light=_ramp(mean, 230.0, 195.0),
        resolution=_ramp(align.eye_distance(landmarks), 30.0, 50.0),
        blockiness=_ramp(block_ratio(luma, x0, y0), 2.6, 1.4),
        pose=_ramp(max(abs(angles.yaw), abs(angles.pitch)), 70.0, 30.0),
        faceness=_ramp(detection.score, 0.78, 0.88),
    )


def require(measured: Sequence[FaceQuality], minimum: float) -> list[int]:
    """The positions of the faces whose overall quality reaches `minimum`, or ProcessingError
    `low_quality` with the best face's parts when none does (none measured: none kept)."""
    kept = [i for i, q in enumerate(measured) if q.overall >= minimum]
    if measured and not kept:
        best = max(measured, key=lambda q: q.overall)
        raise ProcessingError(
            f"no face reaches quality {minimum}; the best: {best.describe()}", code="low_quality"
        )
    return kept
