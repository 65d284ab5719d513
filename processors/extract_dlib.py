"""dlib ResNet v1 face descriptors: 128 floats per face, descriptor version 2.

The model (built by processors.convert.faceapi_resnet) takes dlib face chips: what dlib's
`extract_image_chip(img, get_face_chip_details(shape, 150, 0.25))` returns. Our samples are
already aligned on SAMPLE_TEMPLATE, so the chip is one fixed similarity warp of the sample.

Where dlib's chip puts our five points: get_face_chip_details fits the face's landmarks to its
mean face (its 68-point branch lists points 17-67 in unit coordinates), then maps unit point p
to chip pixel (padding + p) / (1 + 2 * padding) * size. A face whose landmarks are the mean face
lands exactly there. Our points in 68-point terms: eye centres are the means of the eye contours
(36-41 and 42-47), the nose tip is point 30, the mouth corners are 48 and 54. The least-squares
similarity from SAMPLE_TEMPLATE to those chip positions has scale 0.966 and turns 0.3 degrees:
the chip is nearly a crop of the sample. dlib's examples/johns are such chips; rebuilt through
detector, sample and this warp they give descriptors at cosine 0.995 (mean) to the originals'.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2
import numpy as np

from processors.align import SAMPLE_TEMPLATE, check_sample, similarity_transform
from processors.session import create_session
from processors.types import Descriptors, ImageBGR

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# dlib's mean face (image_transforms/interpolation.h, get_face_chip_details), unit coordinates,
# at our five points: right eye centre, left eye centre, nose tip, right and left mouth corners.
DLIB_MEAN_FACE_5 = np.array(
    [
        [0.225492, 0.215990],  # mean of points 36-41
        [0.754761, 0.215990],  # mean of points 42-47
        [0.490127, 0.515625],  # point 30
        [0.254149, 0.780233],  # point 48
        [0.726104, 0.780233],  # point 54
    ],
    dtype=np.float32,
)
CHIP_POINTS = (CHIP_PADDING + DLIB_MEAN_FACE_5) / (1 + 2 * CHIP_PADDING) * CHIP_SIZE
SAMPLE_TO_CHIP = similarity_transform(SAMPLE_TEMPLATE, CHIP_POINTS)


class DlibResNetExtractor:
    version = 2
    dimension = 128

    def __init__(self, model_path: Path | str, *, threads: int | None = None) -> None:
        self.session = create_session(model_path, threads=threads)
        self.input_name: str = self.session.get_inputs()[0].name

    def chip(self, sample: ImageBGR) -> ImageBGR:
        """The 150x150 dlib face chip of a warped sample (bilinear, as dlib samples it)."""
        check_sample(sample)
        chip = cv2.warpAffine(
            sample, SAMPLE_TO_CHIP, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR
        )
        return cast(ImageBGR, chip)

    def extract(self, samples: list[ImageBGR]) -> Descriptors:
        """L2-normalised float32 descriptors, one row per sample (see processors.align.warp)."""
        if not samples:
            return np.empty((0, self.dimension), np.float32)
        return self.describe_chips([self.chip(s) for s in samples])

    def describe_chips(self, chips: list[ImageBGR]) -> Descriptors:
        """L2-normalised descriptors of 150x150 BGR dlib face chips, however they were cut."""
        # [N, 150, 150, 3] RGB 0-255: the graph subtracts dlib's mean colour and scales itself.
        rgb = np.stack(chips)[..., ::-1].astype(np.float32)
        features = np.asarray(self.session.run(None, {self.input_name: rgb})[0], np.float32)
        descriptors: Descriptors = features / np.linalg.norm(features, axis=1, keepdims=True)
        return descriptors
