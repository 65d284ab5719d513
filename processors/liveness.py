"""Passive single-image liveness: Silent-Face-Anti-Spoofing's two MiniFASNets, plus image quality.

MiniFASNetV2 sees the face box enlarged 2.7x, MiniFASNetV1SE 4.0x (more context: a screen's or
a print's edge), each resized to 80x80 BGR; both output softmax over (spoof, real, spoof).
The ONNX files come from processors.convert.minifasnet.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from processors.errors import ProcessingError
from processors.session import create_session
from processors.types import Detection, ImageBGR, LivenessResult

FloatArray = npt.NDArray[np.float32]

# The crop scale each model was trained with (its file name: 2.7_80x80_..., 4_0_0_80x80_...).
SCALES = (2.7, 4.0)
CROP_SIZE = 80
REAL_CLASS = 1

# Quality calibration, in 8-bit luma of the face as it appears in the 2.7x crop (see `quality`),
# set on the 43 faces of dlib's examples/faces: their mean luma spans 57-182, their luma
# standard deviation 17-66 (10 % below 24), their sharpness ratio 0.50-3.8, which a Gaussian
# blur of sigma 1 crop pixel brings to 0.07-0.31.
_MARGIN = 64.0  # a mean luma this far from black and from white is well exposed (dark skin too)
_CLIPPED = (5, 250)  # pixels at or beyond these are crushed shadows / blown highlights
_CONTRAST = 24.0  # luma standard deviation from which contrast is full
_SHARPNESS = 0.5  # Laplacian-to-luma variance ratio from which the face is in focus


def _span(centre: float, length: float, last: int) -> tuple[int, int]:
    """First and last pixel of `length` about `centre`, shifted (not padded) to lie in
    0..last, truncated to ints: Silent-Face's CropImage._get_new_box along one axis."""
    start, end = centre - length / 2, centre + length / 2
    if start < 0:
        start, end = 0.0, end - start
    if end > last:
        start, end = start - (end - last), float(last)
    return int(start), int(end)


def crop(image: ImageBGR, detection: Detection, scale: float, size: int) -> npt.NDArray[np.uint8]:
    """Silent-Face's CropImage: the box enlarged `scale` times about its centre (less if that
    does not fit the image), moved inside the image, resized to size x size."""
    if detection.width <= 0 or detection.height <= 0:
        raise ProcessingError(f"empty face box {detection.width}x{detection.height}")
    src_h, src_w = image.shape[:2]
    scale = min((src_h - 1) / detection.height, (src_w - 1) / detection.width, scale)
    x0, x1 = _span(detection.x + detection.width / 2, detection.width * scale, src_w - 1)
    y0, y1 = _span(detection.y + detection.height / 2, detection.height * scale, src_h - 1)
    resized = cv2.resize(image[y0 : y1 + 1, x0 : x1 + 1], (size, size))
    return resized.astype(np.uint8, copy=False)


def quality(face: npt.NDArray[np.uint8]) -> float:
    """Integral image quality in [0, 1] of a BGR face image (1 = good), from its luma Y:

        exposure  = clip(min(mean Y, 255 - mean Y) / 64, 0, 1) * (1 - clipped)
                    (clipped: the share of pixels with Y <= 5 or Y >= 250)
        contrast  = clip(std Y / 24, 0, 1)
        sharpness = clip(var(Laplacian Y) / var Y / 0.5, 0, 1)
        quality   = exposure * contrast * sharpness

    Each term is monotone: it rises with a mean further from black and white, fewer clipped
    pixels, more contrast and more fine detail; the product makes any one failing term fail
    the face (over a 0.5 threshold every term must be over 0.5). Sharpness is relative to the
    contrast, so dim faces are not called blurred. It is measured at the crop's resolution:
    blur finer than the crop's downscaling of the photo (large faces) goes unseen.
    """
    luma = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    values = luma.astype(np.float64)
    mean, variance = float(values.mean()), float(values.var())
    clipped = float(np.mean((luma <= _CLIPPED[0]) | (luma >= _CLIPPED[1])))
    exposure = min(max(min(mean, 255.0 - mean) / _MARGIN, 0.0), 1.0) * (1.0 - clipped)
    contrast = min(np.sqrt(variance) / _CONTRAST, 1.0)
    laplacian = cv2.Laplacian(values, cv2.CV_64F)
    sharpness = min(float(laplacian.var()) / variance / _SHARPNESS, 1.0) if variance else 0.0
    return float(exposure * contrast * sharpness)


class MiniFASNetLiveness:
    """LivenessEstimator: probability = mean real-class score of the two models; quality from
    the face region of the 2.7x crop (`quality`)."""

    def __init__(
        self, v2_path: Path | str, v1se_path: Path | str, *, threads: int | None = None
    ) -> None:
        # In SCALES order: one session per crop.
        self.sessions = [create_session(p, threads=threads) for p in (v2_path, v1se_path)]
        self.input_names: list[str] = [s.get_inputs()[0].name for s in self.sessions]

    def crops(self, image: ImageBGR, detection: Detection) -> npt.NDArray[np.uint8]:
        """[2, 80, 80, 3] uint8: the 2.7x then the 4.0x crop."""
        return np.stack([crop(image, detection, scale, CROP_SIZE) for scale in SCALES])

    def estimate(self, crops: list[npt.NDArray[np.uint8]]) -> list[LivenessResult]:
        if not crops:
            return []
        batch = np.stack(crops)  # [N, models, H, W, 3]
        if batch.shape[1:] != (len(SCALES), CROP_SIZE, CROP_SIZE, 3):
            raise ProcessingError(f"liveness crops have shape {batch.shape[1:]}")
        real = np.zeros(len(batch), np.float64)
        for i, (session, name) in enumerate(zip(self.sessions, self.input_names, strict=True)):
            blob = batch[:, i].transpose(0, 3, 1, 2).astype(np.float32)  # NCHW, 0-255
            probabilities: FloatArray = session.run(None, {name: blob})[0]
            real += probabilities[:, REAL_CLASS]
        real /= len(self.sessions)
        # The face box is the central 1/2.7 of the first crop (off-centre where the crop had to
        # move inside the image, larger where it had to shrink).
        side = round(CROP_SIZE / SCALES[0])
        start = (CROP_SIZE - side) // 2
        faces = batch[:, 0, start : start + side, start : start + side]
        return [
            LivenessResult(probability=float(p), quality=quality(face))
            for p, face in zip(real, faces, strict=True)
        ]
