"""The image and face requirements of Liveness V1 and V2 (LUNA PLATFORM's lists), and their check.

An image that fails one is refused before estimation: the models were not made for it, so any
probability would be noise. Each failure is a ProcessingError naming the requirement, the
measured value and the version, with a code of its own.

Interpretations of the reference:
- V1 "minimal image height 480" is read as the short side (480p), as the same list accepts both
  horizontal and vertical 720p/1080p images. V2 lists "mobile devices - 720 x 960 px" and
  "webcam (PC or laptop) - 1280 x 720 px", width by height: a portrait phone frame or a landscape
  webcam frame, each at least that large. So 960x720 (landscape, narrower than a webcam's) is
  refused, and 720x1280 (a phone's portrait frame) accepted.
- V1's eye distance "~90 pixels (it is forbidden to set the value lower than 80)" and its padding
  ("the default minimum value of padding is 25") are settings in the reference: the defaults
  here, which callers may raise (streams.settings' liveness section), and `requirements` keeps
  the eye distance at 80 or more.
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
from dataclasses import dataclass, replace
from typing import Literal

from processors import align, pose
from processors.errors import ProcessingError
from processors.types import Detection

Version = Literal["v1", "v2"]


@dataclass(frozen=True, slots=True)
class Requirements:
    """One version's limits; 0 means the version has no such requirement."""

    name: str
    min_sizes: tuple[tuple[int, int], ...]  # (width, height): an image at least one of them
    min_padding: int
    min_face_size: int
    min_eye_distance: int
    max_yaw: float
    max_pitch: float
    max_roll: float


V1_EYE_DISTANCE_FLOOR = 80  # "it is forbidden to set the value lower than 80 pixels"

REQUIREMENTS: dict[Version, Requirements] = {
    "v1": Requirements(
        name="Liveness V1",
        min_sizes=((480, 480),),  # 480p, either orientation
        min_padding=25,
        min_face_size=0,
        min_eye_distance=90,
        max_yaw=20.0,
        max_pitch=20.0,
        max_roll=30.0,
    ),
    "v2": Requirements(
        name="Liveness V2",
        min_sizes=((720, 960), (1280, 720)),  # mobile (portrait), webcam (landscape)
        min_padding=10,
        min_face_size=200,
        min_eye_distance=0,
        max_yaw=25.0,
        max_pitch=25.0,
        max_roll=25.0,
    ),
}


def requirements(
    version: Version, *, min_padding: int | None = None, min_eye_distance: int | None = None
) -> Requirements:
    """A version's requirements with the configurable ones set (None: the default)."""
    rules = REQUIREMENTS[version]
    if min_eye_distance is not None and version == "v1":
        if min_eye_distance < V1_EYE_DISTANCE_FLOOR:
            raise ValueError(
                f"Liveness V1's eye distance may not be set under {V1_EYE_DISTANCE_FLOOR} px, "
                f"got {min_eye_distance}"
            )
        rules = replace(rules, min_eye_distance=min_eye_distance)
    if min_padding is not None:
        rules = replace(rules, min_padding=min_padding)
    return rules


def _rules(which: Version | Requirements) -> Requirements:
    return which if isinstance(which, Requirements) else REQUIREMENTS[which]


def check_image(which: Version | Requirements, width: int, height: int) -> None:
    """The resolution requirement: cheap, so callers run it before detection."""
    rules = _rules(which)
    if not any(width >= w and height >= h for w, h in rules.min_sizes):
        sizes = " or ".join(f"{w}x{h}" for w, h in rules.min_sizes)
        need = (
            f"at least {rules.min_sizes[0][0]} px on the short side"
            if len(rules.min_sizes) == 1 and rules.min_sizes[0][0] == rules.min_sizes[0][1]
            else f"at least {sizes} (width x height: a mobile portrait or a webcam landscape frame)"
        )
        raise ProcessingError(
            f"image is {width}x{height}, {rules.name} needs {need}",
            code="liveness_image_too_small",
        )


def check_faces(
    which: Version | Requirements,
    width: int,
    height: int,
    detections: Sequence[Detection],
    pose_of: pose.PoseOf = pose.five_point,
) -> None:
    """The face requirements, on every face the detector found in a width x height image.

    `pose_of` measures the face's head pose: pass `lambda d: estimator.estimate(image, d)` (a
    processors.pose.PoseEstimator); the five-point default misreads tilted faces.
    """
    rules = _rules(which)
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
