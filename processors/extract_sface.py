"""SFace 2021dec (OpenCV Zoo) face descriptors: 128 floats per face, descriptor version 1."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from processors.align import (
    ARCFACE_112_TEMPLATE,
    SAMPLE_SIZE,
    SAMPLE_TEMPLATE,
    check_sample,
    similarity_transform,
)
from processors.session import create_session
from processors.types import Descriptors, ImageBGR

# SFace wants the face on the ArcFace 112x112 template; the sample holds that template scaled
# and shifted, so the model input is one fixed square of the sample: the one this maps 112x112 to.
_TO_SAMPLE = similarity_transform(ARCFACE_112_TEMPLATE, SAMPLE_TEMPLATE)


class SFaceExtractor:
    version = 1
    dimension = 128

    def __init__(self, model_path: Path | str, *, threads: int | None = None) -> None:
        self.session = create_session(model_path, threads=threads)
        model_input = self.session.get_inputs()[0]
        self.input_name: str = model_input.name
        batch, _, height, width = model_input.shape
        self.input_size = (width, height)
        produced = self.session.get_outputs()[0].shape[-1]
        if produced != self.dimension:
            raise ValueError(
                f"{model_path}: gives {produced} values per face, not {self.dimension}"
            )
        # The published graph has batch 1: then each face is a run of its own.
        self.batch_fixed = isinstance(batch, int)
        scale = float(_TO_SAMPLE[0, 0])
        left, top = (round(float(v)) for v in _TO_SAMPLE[:, 2])
        right, bottom = left + round(scale * width), top + round(scale * height)
        if min(left, top) < 0 or max(right, bottom) > SAMPLE_SIZE:
            raise ValueError(f"SFace input {width}x{height} does not fit the alignment sample")
        self._crop = (slice(top, bottom), slice(left, right))

    def preprocess(self, sample: ImageBGR) -> npt.NDArray[np.uint8]:
        """The 112x112 RGB ArcFace crop of a warped sample, as cv2.FaceRecognizerSF feeds it."""
        check_sample(sample)
        crop = cv2.resize(sample[self._crop], self.input_size, interpolation=cv2.INTER_AREA)
        return cast(npt.NDArray[np.uint8], cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))

    def extract(self, samples: list[ImageBGR]) -> Descriptors:
        """L2-normalised float32 descriptors, one row per sample (see processors.align.warp)."""
        if not samples:
            return np.empty((0, self.dimension), np.float32)
        # 0-255 RGB, NCHW: the graph itself subtracts 127.5 and scales by 1/128.
        blob = np.stack([self.preprocess(s) for s in samples]).transpose(0, 3, 1, 2)
        blob = blob.astype(np.float32)
        if self.batch_fixed:
            runs = [self.session.run(None, {self.input_name: face[None]})[0] for face in blob]
            features = np.concatenate(runs)
        else:
            features = self.session.run(None, {self.input_name: blob})[0]
        features = features.astype(np.float32).reshape(len(samples), self.dimension)
        descriptors: Descriptors = features / np.linalg.norm(features, axis=1, keepdims=True)
        return descriptors
