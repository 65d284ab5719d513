"""Face alignment to a shared sample, and rough geometry of the five YuNet landmarks.

Every extractor starts from the same SAMPLE_SIZE x SAMPLE_SIZE "sample": the face warped so its
five points land on SAMPLE_TEMPLATE, the ArcFace 112x112 template scaled 1.5x and centred. Each
extractor then cuts its own input from the sample with a fixed transform (SFace: the ArcFace crop
back at 112x112; dlib: its 150x150 chip), so detection and warping happen once per face.

Landmarks are (5, 2) float arrays in the order YuNet emits: right eye, left eye, nose tip,
right mouth corner, left mouth corner (the subject's right, i.e. image left, first).
"""

from __future__ import annotations

import math
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from processors.types import ImageBGR

Points = npt.NDArray[np.float32]

SAMPLE_SIZE = 250
ARCFACE_112_TEMPLATE: Points = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
SAMPLE_TEMPLATE: Points = ARCFACE_112_TEMPLATE * 1.5 + 41

_RIGHT_EYE, _LEFT_EYE, _NOSE, _RIGHT_MOUTH, _LEFT_MOUTH = range(5)


def similarity_transform(src: Points, dst: Points) -> npt.NDArray[np.float64]:
    """The 2x3 rotation + uniform scale + translation taking `src` nearest to `dst` (least squares).

    Umeyama's closed form, as insightface (skimage) and cv2.FaceRecognizerSF.alignCrop use; it is
    deterministic, unlike the sampling of cv2.estimateAffinePartial2D's robust methods.
    """
    src64, dst64 = src.astype(np.float64), dst.astype(np.float64)
    src_mean, dst_mean = src64.mean(axis=0), dst64.mean(axis=0)
    src_c, dst_c = src64 - src_mean, dst64 - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src64))
    # Forbid a reflection: flip the weakest axis when the best orthogonal fit is one.
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / src_c.var(axis=0).sum())
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def warp(image: ImageBGR, landmarks: Points) -> ImageBGR:
    """The SAMPLE_SIZE x SAMPLE_SIZE BGR sample of the face whose five points are `landmarks`."""
    matrix = similarity_transform(landmarks, SAMPLE_TEMPLATE)
    sample = cv2.warpAffine(image, matrix, (SAMPLE_SIZE, SAMPLE_SIZE), flags=cv2.INTER_LINEAR)
    return cast(ImageBGR, sample)


def check_sample(sample: ImageBGR) -> None:
    """Refuses an image that is not a sample as `warp` makes it."""
    if sample.shape != (SAMPLE_SIZE, SAMPLE_SIZE, 3):
        raise ValueError(f"expected a {SAMPLE_SIZE}x{SAMPLE_SIZE} BGR sample, got {sample.shape}")


def eye_distance(landmarks: Points) -> float:
    """Pixels between the eye centres: the face's resolution, whatever the box drawn around it."""
    return float(np.linalg.norm(landmarks[_LEFT_EYE] - landmarks[_RIGHT_EYE]))


# How far the nose tip stands in front of the eyes and mouth corners, as a fraction of the
# distance between the eyes, in a generic adult head (about 27 mm for 63 mm between pupils).
NOSE_DEPTH = 0.43
# The frontal face as the template draws it: where the nose sits between eyes and mouth, and
# the eye-to-mouth height relative to the eye distance.
_EYES = (ARCFACE_112_TEMPLATE[_RIGHT_EYE] + ARCFACE_112_TEMPLATE[_LEFT_EYE]) / 2
_MOUTH = (ARCFACE_112_TEMPLATE[_RIGHT_MOUTH] + ARCFACE_112_TEMPLATE[_LEFT_MOUTH]) / 2
_NOSE_HEIGHT = float((ARCFACE_112_TEMPLATE[_NOSE, 1] - _EYES[1]) / (_MOUTH[1] - _EYES[1]))
_EYE_MOUTH_RATIO = float((_MOUTH[1] - _EYES[1]) / eye_distance(ARCFACE_112_TEMPLATE))


def head_pose(landmarks: Points) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, a rough estimate from the five points alone.

    An approximation for quality gates (e.g. refuse |yaw| > 30), not a measurement: it assumes
    an orthographic camera and the template's average face, with the nose tip NOSE_DEPTH in front
    of the eyes and mouth. Faces and expressions move it: on dlib's near-frontal examples/johns
    it reads pitch +9 +- 3 degrees (YuNet puts the nose lower than the template does), and a
    broad smile lifts the mouth corners and adds 10-15 degrees more. A head both turned and
    nodded also tilts the eye line, by about atan(tan(yaw) * sin(pitch)).
    roll: angle of the eye line, positive when the face is turned clockwise in the image.
    yaw: from the nose's sideways offset from the eye-mouth centre line, positive when the nose
    points to the image right (the subject turns to their left).
    pitch: from the nose's height between eyes and mouth against the frontal template,
    positive when the subject looks down.
    """
    points = landmarks.astype(np.float64)
    eye_line = points[_LEFT_EYE] - points[_RIGHT_EYE]
    roll = math.atan2(eye_line[1], eye_line[0])
    # Undo the roll about the eye midpoint so yaw and pitch read along image axes.
    cos, sin = math.cos(roll), math.sin(roll)
    eyes = (points[_RIGHT_EYE] + points[_LEFT_EYE]) / 2
    upright = (points - eyes) @ np.array([[cos, -sin], [sin, cos]])
    eye_gap = float(np.linalg.norm(eye_line))
    mouth = (upright[_RIGHT_MOUTH] + upright[_LEFT_MOUTH]) / 2
    nose = upright[_NOSE]

    # Turning by yaw moves the nose sideways by depth*sin(yaw) and shrinks the eye gap by
    # cos(yaw): their ratio is NOSE_DEPTH*tan(yaw), whatever the face's size.
    yaw = math.atan2(nose[0] - mouth[0] / 2, NOSE_DEPTH * eye_gap)
    # Likewise vertically, the eye-to-mouth height standing in for the face's size.
    offset = nose[1] - _NOSE_HEIGHT * mouth[1]
    pitch = math.atan2(offset * _EYE_MOUTH_RATIO, NOSE_DEPTH * mouth[1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)
