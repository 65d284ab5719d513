"""The image and face requirements of Liveness V1 and V2 (LUNA PLATFORM's lists), and their check.

An image that fails one is refused before estimation: the models were not made for it, so any
probability would be noise. Each failure is a ProcessingError naming the requirement, the
measured value and the version, with a code of its own.

Interpretations of the reference:
- V1 "minimal image height 480" is read as the short side (480p), as the same list accepts both
  horizontal and vertical 720p/1080p images. V2 accepts 720x960 (mobile, either orientation) or
  1280x720 (webcam): together, a short side of at least 720 and a long side of at least 960.
- Padding / indent: the distance from the face box to each of the four image borders; a box
  reaching past a border measures negative. Pixel measures are reported rounded down, so a
  refused value never reads as the limit itself.
- V2 "face detection size": the box's smaller side (YuNet boxes are taller than wide).
- V1 recommends a single face; a second face in a liveness image is what a held-up photo looks
  like, so V1 refuses several faces as V2 does, with the same code.
- Angles come from the caller's pose function: processors.pose.PoseEstimator (68 points and a
  3D head fit, within a degree or two of the truth on faces tilted up to 45 degrees) where the
  caller has the image, else processors.pose.five_point, YuNet's five points alone, which read a
  face tilted 40 degrees as 24. Both are corrected for their pitch on frontal faces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from processors import align, pose
from processors.errors import ProcessingError
from processors.types import Detection

Version = Literal["v1", "v2"]


@dataclass(frozen=True, slots=True)
class Requirements:
    """One version's limits; 0 means the version has no such requirement."""

    name: str
    min_short_side: int
    min_long_side: int
    min_padding: int
    min_face_size: int
    min_eye_distance: int
    max_yaw: float
    max_pitch: float
    max_roll: float


REQUIREMENTS: dict[Version, Requirements] = {
    "v1": Requirements(
        name="Liveness V1",
        min_short_side=480,
        min_long_side=0,
        min_padding=25,
        min_face_size=0,
        min_eye_distance=80,
        max_yaw=20.0,
        max_pitch=20.0,
        max_roll=30.0,
    ),
    "v2": Requirements(
        name="Liveness V2",
        min_short_side=720,
        min_long_side=960,
        min_padding=10,
        min_face_size=200,
        min_eye_distance=0,
        max_yaw=25.0,
        max_pitch=25.0,
        max_roll=25.0,
    ),
}


def check_image(version: Version, width: int, height: int) -> None:
    """The resolution requirement: cheap, so callers run it before detection."""
    rules = REQUIREMENTS[version]
    short, long = sorted((width, height))
    if short < rules.min_short_side or long < rules.min_long_side:
        need = f"at least {rules.min_short_side} px on the short side"
        if rules.min_long_side:
            need += f" and {rules.min_long_side} px on the long side (720x960 or 1280x720)"
        raise ProcessingError(
            f"image is {width}x{height}, {rules.name} needs {need}",
            code="liveness_image_too_small",
        )


def check_faces(
    version: Version,
    width: int,
    height: int,
    detections: Sequence[Detection],
    pose_of: pose.PoseOf = pose.five_point,
) -> None:
    """The face requirements, on every face the detector found in a width x height image.

    `pose_of` measures the face's head pose: pass `lambda d: estimator.estimate(image, d)` (a
    processors.pose.PoseEstimator); the five-point default misreads tilted faces.
    """
    rules = REQUIREMENTS[version]
    if not detections:
        raise ProcessingError("no face found in the image", code="no_face")
    if len(detections) > 1:
        raise ProcessingError(
            f"{len(detections)} faces found, {rules.name} needs exactly one",
            code="liveness_several_faces",
        )
    face = detections[0]
    _check_padding(rules, width, height, face)
    size = min(face.width, face.height)
    if size < rules.min_face_size:
        raise ProcessingError(
            f"face is {math.floor(size)} px, {rules.name} needs at least {rules.min_face_size} px",
            code="liveness_face_too_small",
        )
    eyes = align.eye_distance(face.landmarks)
    if eyes < rules.min_eye_distance:
        raise ProcessingError(
            f"eye distance is {math.floor(eyes)} px, {rules.name} needs at least "
            f"{rules.min_eye_distance} px",
            code="liveness_eye_distance_too_small",
        )
    angles = pose_of(face)
    _check_angle(rules.name, "yaw", angles.yaw, rules.max_yaw)
    _check_angle(rules.name, "pitch", angles.pitch, rules.max_pitch)
    _check_angle(rules.name, "roll", angles.roll, rules.max_roll)


def _check_padding(rules: Requirements, width: int, height: int, face: Detection) -> None:
    gaps = {
        "left": face.x,
        "top": face.y,
        "right": width - (face.x + face.width),
        "bottom": height - (face.y + face.height),
    }
    side, gap = min(gaps.items(), key=lambda item: item[1])
    if gap < rules.min_padding:
        raise ProcessingError(
            f"face is {math.floor(gap)} px from the {side} border, {rules.name} needs at least "
            f"{rules.min_padding} px",
            code="liveness_face_near_border",
        )


def _check_angle(name: str, angle: str, value: float, limit: float) -> None:
    if abs(value) > limit:
        raise ProcessingError(
            f"head {angle} is {value:.1f} degrees, {name} allows at most {limit:.0f} either way",
            code=f"liveness_{angle}_too_large",
        )
