"""The contracts of the compute layer: a reader sees these before the implementations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

ImageBGR = npt.NDArray[np.uint8]  # H x W x 3, OpenCV channel order
Descriptors = npt.NDArray[np.float32]  # N x D, L2-normalised rows


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found in an image, in that image's pixel coordinates."""

    x: float
    y: float
    width: float
    height: float
    score: float
    # Five points: right eye, left eye, nose tip, right mouth corner, left mouth corner
    # (the subject's right/left, i.e. image left first), shape (5, 2).
    landmarks: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class LivenessResult:
    """Liveness V2-style output: both values in [0..1], 1 meaning live / good."""

    probability: float
    quality: float


GENDERS = ("male", "female")
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")


@dataclass(frozen=True, slots=True)
class FaceAttributes:
    """Basic attributes of one face (face-api's AgeGenderNet and FaceExpressionNet)."""

    age: float  # years
    gender: str  # one of GENDERS
    gender_probability: float  # of `gender`, 0.5..1
    expressions: dict[str, float]  # EXPRESSIONS -> probability, summing to 1


@runtime_checkable
class ModelSession(Protocol):
    """The part of onnxruntime.InferenceSession the models use; lets tests pass a fake."""

    def run(
        self, output_names: list[str] | None, input_feed: dict[str, npt.NDArray[np.generic]]
    ) -> list[npt.NDArray[np.generic]]: ...

    def get_inputs(self) -> list[object]: ...


class FaceDetector(Protocol):
    def detect(self, image: ImageBGR) -> list[Detection]: ...


class LivenessEstimator(Protocol):
    def crops(self, image: ImageBGR, detection: Detection) -> npt.NDArray[np.uint8]:
        """The model input cut from the full image (done where the image is decoded)."""
        ...

    def estimate(
        self, crops: list[npt.NDArray[np.uint8]], qualities: list[float]
    ) -> list[LivenessResult]:
        """One result per crop; `qualities` are the faces' processors.quality overall, measured
        on the original image where it is decoded (the crops are too small to tell)."""
        ...


class DescriptorExtractor(Protocol):
    """Turns warped face samples (see processors.align) into L2-normalised descriptors."""

    version: int
    dimension: int

    def extract(self, samples: list[ImageBGR]) -> Descriptors: ...


class AttributeEstimator(Protocol):
    def crop(self, image: ImageBGR, detection: Detection) -> npt.NDArray[np.float32]:
        """The model input cut from the full image (done where the image is decoded)."""
        ...

    def estimate(self, crops: list[npt.NDArray[np.float32]]) -> list[FaceAttributes]:
        """One result per crop, batched."""
        ...
