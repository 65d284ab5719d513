"""68 face landmarks (iBUG 300-W scheme) from face-api's FaceLandmark68Net, in image pixels.

The net (processors.convert.faceapi_landmarks68) reads a 112x112 square around a face and was
trained on upright faces: on a tilted crop its points drift toward an upright face, as YuNet's
five do. So the crop is cut upright: a similarity warp putting the face's five points on
CROP_TEMPLATE; the first from YuNet's five, then again from the 68 points' own five (their
roll is nearly exact on an upright crop), which removes the tilt YuNet's points leave.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from processors.align import ARCFACE_112_TEMPLATE, Points, similarity_transform
from processors.session import create_session
from processors.types import ImageBGR

INPUT_SIZE = 112
# Where the crop puts the five points: the ArcFace template at its own scale, its centroid
# moved to (56, 46). Measured on dlib's examples/faces against their 68 points, this placement
# gives the least error (scales 0.9-1.2, centroid heights 42-62 tried).
CROP_TEMPLATE: Points = (
    ARCFACE_112_TEMPLATE - ARCFACE_112_TEMPLATE.mean(axis=0) + np.array([56, 46], np.float32)
).astype(np.float32)
# Upright crops cut at most: from YuNet's points, then from the previous pass's 68.
PASSES = 4
# A pass whose points, in its own crop, tilt less than this from the template has converged.
CONVERGED_DEGREES = 5.0
# The net also "converges" on a face tilted 60 degrees or more in its crop, calling it upright.
# A truly upright crop answers turns of it by +-PROBE_DEGREES with tilts near them (measured
# 18-23 on dlib's examples/johns); a false one does not (e.g. 14 and 21). YuNet's points on a face
# tilted past ~45 degrees may read nearly upright: then crops turned by RETRY_TURNS from them are
# tried, and of those that converge and answer the probe, the one answering it best is kept
# (else the first crop's points). Wider retries (90) passed the probe wrongly on small faces.
PROBE_DEGREES = 20.0
PROBE_TOLERANCE = 8.0
RETRY_TURNS = (30.0, -30.0, 45.0, -45.0)
_TEMPLATE_ROLL = math.degrees(math.atan2(*(CROP_TEMPLATE[1] - CROP_TEMPLATE[0])[::-1]))

Landmarks68 = npt.NDArray[np.float32]  # (68, 2), image pixels


def five_of(points: Landmarks68) -> Points:
    """The 68 points as YuNet's five: eye centres (contour means), nose tip, mouth corners."""
    return np.stack(
        [
            points[36:42].mean(axis=0),
            points[42:48].mean(axis=0),
            points[30],
            points[48],
            points[54],
        ]
    ).astype(np.float32)


class FaceLandmarks68:
    def __init__(self, model_path: Path | str, *, threads: int | None = None) -> None:
        self.session = create_session(model_path, threads=threads)
        self.input_name: str = self.session.get_inputs()[0].name

    def crop(self, image: ImageBGR, five: Points) -> tuple[npt.NDArray[np.float32], np.ndarray]:
        """The 112x112 RGB float input cut upright around the face whose five points are `five`,
        and the 2x3 matrix taking image pixels to crop pixels."""
        matrix = similarity_transform(five, CROP_TEMPLATE)
        crop = cv2.warpAffine(
            image, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
        return cast(npt.NDArray[np.float32], rgb), matrix

    def run(self, image: ImageBGR, five: Points) -> tuple[Landmarks68, float]:
        """One pass: the 68 points in image pixels, and how far (degrees) they tilt in the crop."""
        crop, matrix = self.crop(image, five)
        out = self.session.run(None, {self.input_name: crop[None]})[0]
        found = out.reshape(68, 2) * INPUT_SIZE
        return _to_image(found, matrix), _roll(five_of(found)) - _TEMPLATE_ROLL

    def upright(self, image: ImageBGR, five: Points) -> tuple[Landmarks68, float]:
        """Passes from `five` until the crop is upright: the points and tilt of the pass that
        came nearest (passes may overshoot on faces tilted far in the first crop)."""
        best: tuple[Landmarks68, float] | None = None
        for index in range(PASSES):
            points, tilt = self.run(image, five)
            five = five_of(points)
            # The first pass may read "upright" on a face turned past 90 degrees: only a crop
            # cut from the net's own points, found upright again, is one.
            if index == 0:
                continue
            if best is None or abs(tilt) < abs(best[1]):
                best = (points, tilt)
            if abs(tilt) < CONVERGED_DEGREES:
                break
        assert best is not None  # PASSES >= 2
        return best

    def probe_error(self, image: ImageBGR, points: Landmarks68) -> float:
        """How far the net misreads the upright crop of `points` turned by +-PROBE_DEGREES."""
        five = five_of(points)
        return max(
            abs(self.run(image, _turned(five, turn))[1] - turn)
            for turn in (PROBE_DEGREES, -PROBE_DEGREES)
        )

    def detect(self, image: ImageBGR, five: Points) -> Landmarks68:
        """The 68 points of the face whose YuNet five points are `five`, in image pixels.

        The crop cut from YuNet's points is kept unless it fails the probe and a retried one
        passes it: on small faces the probe is noisy, and a retry that fails it too is no better.
        """
        first, tilt = self.upright(image, five)
        if self._upright_crop(image, first, tilt):
            return first
        passed = []  # (probe error, points) of the retries that pass
        for turn in RETRY_TURNS:
            points, tilt = self.upright(image, _turned(five, turn))
            if abs(tilt) < CONVERGED_DEGREES:
                error = self.probe_error(image, points)
                if error < PROBE_TOLERANCE:
                    passed.append((error, points))
        return min(passed, key=lambda found: found[0])[1] if passed else first

    def _upright_crop(self, image: ImageBGR, points: Landmarks68, tilt: float) -> bool:
        # Unconverged, or answering the probe as a face turned far in its crop can: not upright.
        return abs(tilt) < CONVERGED_DEGREES and self.probe_error(image, points) < PROBE_TOLERANCE


def _turned(five: Points, degrees: float) -> Points:
    """`five` turned about their centroid, counter-clockwise on screen for positive degrees."""
    centre = tuple(float(v) for v in five.mean(axis=0))
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cast(Points, cv2.transform(five[None].astype(np.float64), matrix)[0].astype(np.float32))


def _roll(five: Points) -> float:
    eyes = five[1] - five[0]
    return math.degrees(math.atan2(float(eyes[1]), float(eyes[0])))


def _to_image(points: npt.NDArray[np.float32], matrix: np.ndarray) -> Landmarks68:
    inverse = cv2.invertAffineTransform(matrix)
    return (points @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)
