"""Passive single-image liveness: Silent-Face-Anti-Spoofing's two MiniFASNets.

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


class MiniFASNetLiveness:
    """LivenessEstimator: probability = mean real-class score of the two models; the quality
    is the one given, processors.quality's measure of the face in the original image."""

    def __init__(
        self, v2_path: Path | str, v1se_path: Path | str, *, threads: int | None = None
    ) -> None:
        # In SCALES order: one session per crop.
        self.sessions = [create_session(p, threads=threads) for p in (v2_path, v1se_path)]
        self.input_names: list[str] = [s.get_inputs()[0].name for s in self.sessions]

    def crops(self, image: ImageBGR, detection: Detection) -> npt.NDArray[np.uint8]:
        """[2, 80, 80, 3] uint8: the 2.7x then the 4.0x crop."""
        return np.stack([crop(image, detection, scale, CROP_SIZE) for scale in SCALES])

    def estimate(
        self, crops: list[npt.NDArray[np.uint8]], qualities: list[float]
    ) -> list[LivenessResult]:
        if len(qualities) != len(crops):
            raise ProcessingError(f"{len(crops)} liveness crops but {len(qualities)} qualities")
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
        return [
            LivenessResult(probability=float(p), quality=q)
            for p, q in zip(real, qualities, strict=True)
        ]
