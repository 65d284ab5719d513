"""Liveness V1/V2 requirements on synthetic faces: each requirement fails alone, and a face
meeting all of them passes."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from processors import align
from processors.errors import ProcessingError
from processors.liveness_requirements import Version, check_faces, check_image, requirements
from processors.pose import PITCH_BIAS_5 as PITCH_BIAS
from processors.pose import HeadPose, five_point
from processors.types import Detection

# Images that meet each version's resolution, and a face that meets every face requirement of
# both in them: 300 px box, 100 px between the eyes, 100 px from every border, frontal.
SIZE: dict[Version, tuple[int, int]] = {"v1": (640, 480), "v2": (1280, 720)}


def face(
    x: float = 100,
    y: float = 100,
    size: float = 300,
    eyes: float = 100,
    yaw: float = 0,
    pitch: float = PITCH_BIAS,
    roll: float = 0,
) -> Detection:
    """A size x size box at (x, y) with five points whose head_pose reads (yaw, pitch, roll).

    The ArcFace template reads (0, 0, 0); head_pose takes the nose's offset from it, over
    NOSE_DEPTH * eye distance, as the tangent of yaw and pitch, and the eye line's angle as roll.
    """
    template = align.ARCFACE_112_TEMPLATE.astype(np.float64)
    centre = (template[0] + template[1]) / 2
    points = (template - centre) * eyes / align.eye_distance(align.ARCFACE_112_TEMPLATE)
    depth = align.NOSE_DEPTH * eyes
    points[2] += depth * np.array([math.tan(math.radians(yaw)), math.tan(math.radians(pitch))])
    turn = math.radians(roll)
    rotation = np.array([[math.cos(turn), math.sin(turn)], [-math.sin(turn), math.cos(turn)]])
    points = points @ rotation + (x + size / 2, y + size * 0.4)
    return Detection(x, y, size, size, 0.9, points.astype(np.float32))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_face_meeting_every_requirement_passes(version: Version) -> None:
    check_image(version, *SIZE[version])
    check_faces(version, *SIZE[version], [face()])


def test_the_synthetic_pose_is_what_head_pose_reads() -> None:
    measured = align.head_pose(face(yaw=15, pitch=-10, roll=20).landmarks)
    assert measured == pytest.approx((15, -10, 20), abs=0.5)
    fallback = five_point(face(yaw=15, pitch=PITCH_BIAS - 10, roll=20))
    assert (fallback.yaw, fallback.pitch, fallback.roll) == pytest.approx((15, -10, 20), abs=0.5)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_callers_pose_decides(version: Version) -> None:
    """A face whose five points look frontal, measured (as the 68-point estimate would) tilted 40
    degrees, is refused: the five points on a tilted face read ~24 and would pass."""
    detection = face()
    _refused_with(
        version, [detection], "liveness_roll_too_large", "head roll is 40.0 degrees",
        lambda d: HeadPose(0.0, 0.0, 40.0),
    )  # fmt: skip
    check_faces(version, *SIZE[version], [detection], lambda d: HeadPose(0.0, -20.0, 24.0))


@pytest.mark.parametrize(
    ("version", "width", "height", "message"),
    [
        ("v1", 640, 479, "image is 640x479, Liveness V1 needs at least 480 px on the short side"),
        ("v1", 479, 640, "image is 479x640"),
        ("v2", 719, 1280, "image is 719x1280, Liveness V2 needs at least 720x960 or 1280x720"),
        ("v2", 720, 959, "image is 720x959, Liveness V2 needs at least 720x960 or 1280x720"),
        # Landscape but narrower than a webcam's 1280: neither listed size.
        ("v2", 960, 720, "image is 960x720, Liveness V2 needs at least 720x960 or 1280x720"),
        ("v2", 1279, 720, "image is 1279x720"),
    ],
)
def test_too_small_an_image_is_refused(
    version: Version, width: int, height: int, message: str
) -> None:
    with pytest.raises(ProcessingError, match=message) as error:
        check_image(version, width, height)
    assert error.value.code == "liveness_image_too_small"


@pytest.mark.parametrize(
    ("width", "height"), [(480, 480), (640, 480), (480, 640), (720, 960), (960, 720), (1280, 720)]
)
def test_the_smallest_accepted_images(width: int, height: int) -> None:
    check_image("v1", width, height)


@pytest.mark.parametrize(("width", "height"), [(720, 960), (720, 1280), (1280, 720), (1920, 1080)])
def test_v2_takes_a_phones_portrait_or_a_webcams_landscape_frame(width: int, height: int) -> None:
    check_image("v2", width, height)


def _refused(version: Version, detections: list[Detection], code: str, message: str) -> None:
    _refused_with(version, detections, code, message, five_point)


def _refused_with(
    version: Version,
    detections: list[Detection],
    code: str,
    message: str,
    pose_of: Callable[[Detection], HeadPose],
) -> None:
    with pytest.raises(ProcessingError, match=message) as error:
        check_faces(version, *SIZE[version], detections, pose_of)
    assert error.value.code == code


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_no_face(version: Version) -> None:
    _refused(version, [], "no_face", "no face found")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_several_faces(version: Version) -> None:
    name = {"v1": "Liveness V1", "v2": "Liveness V2"}[version]
    message = f"2 faces found, {name} needs exactly one"
    _refused(version, [face(), face(x=300)], "liveness_several_faces", message)


@pytest.mark.parametrize(
    ("version", "detection", "message"),
    [
        ("v1", face(x=24), "face is 24 px from the left border, Liveness V1 needs at least 25"),
        ("v1", face(y=-3), "face is -3 px from the top border"),
        ("v1", face(x=640 - 300 - 20), "face is 20 px from the right border"),
        ("v2", face(y=720 - 300 - 9), "face is 9 px from the bottom border, Liveness V2 needs"),
    ],
)
def test_face_near_a_border(version: Version, detection: Detection, message: str) -> None:
    _refused(version, [detection], "liveness_face_near_border", message)


def test_padding_at_the_limit_passes() -> None:
    check_faces("v1", 640, 480, [face(x=25, y=25, size=300)])
    check_faces("v2", 1280, 720, [face(x=10, y=410, size=300)])


def test_face_too_small_for_v2() -> None:
    small = face(size=199)
    message = "face is 199 px, Liveness V2 needs at least 200 px"
    _refused("v2", [small], "liveness_face_too_small", message)
    check_faces("v1", 640, 480, [small])  # V1 has no box size requirement, only eye distance


def test_eyes_too_close_for_v1() -> None:
    narrow = face(eyes=89.5)
    message = "eye distance is 89 px, Liveness V1 needs at least 90 px"
    _refused("v1", [narrow], "liveness_eye_distance_too_small", message)
    check_faces("v2", 1280, 720, [narrow])  # V2 has none: its box size stands in


def test_v1s_eye_distance_and_paddings_are_settings_never_under_80_px() -> None:
    lowered = requirements("v1", min_eye_distance=80)
    check_faces(lowered, *SIZE["v1"], [face(eyes=85.0)])
    with pytest.raises(
        ProcessingError, match="eye distance is 79 px, Liveness V1 needs at least 80"
    ):
        check_faces(lowered, *SIZE["v1"], [face(eyes=79.5)])
    with pytest.raises(ValueError, match="may not be set under 80 px"):
        requirements("v1", min_eye_distance=79)
    wider = requirements("v2", min_padding=40)
    with pytest.raises(ProcessingError, match="Liveness V2 needs at least 40") as near:
        check_faces(wider, 1280, 720, [face(x=30, y=410, size=300)])
    assert near.value.code == "liveness_face_near_border"
    check_faces("v2", 1280, 720, [face(x=30, y=410, size=300)])  # the default 10 passes


@pytest.mark.parametrize(
    ("version", "angles", "code", "message"),
    [
        (
            "v1",
            {"yaw": 22},
            "liveness_yaw_too_large",
            "head yaw is 22.0 degrees, Liveness V1 allows",
        ),
        ("v1", {"yaw": -22}, "liveness_yaw_too_large", "head yaw is -22.0 degrees"),
        ("v2", {"yaw": 27}, "liveness_yaw_too_large", "at most 25 either way"),
        ("v1", {"pitch": PITCH_BIAS + 22}, "liveness_pitch_too_large", "pitch is 22.0 degrees"),
        ("v1", {"pitch": PITCH_BIAS - 22}, "liveness_pitch_too_large", "pitch is -22.0 degrees"),
        ("v2", {"pitch": PITCH_BIAS + 27}, "liveness_pitch_too_large", "Liveness V2 allows at"),
        (
            "v1",
            {"roll": 32},
            "liveness_roll_too_large",
            r"head roll is 3[12]\.[0-9] degrees, Liveness V1",
        ),
        (
            "v2",
            {"roll": -27},
            "liveness_roll_too_large",
            r"head roll is -27\.[0-9] degrees, Liveness V2",
        ),
    ],
)
def test_head_pose_out_of_range(
    version: Version, angles: dict[str, float], code: str, message: str
) -> None:
    _refused(version, [face(**angles)], code, message)


@pytest.mark.parametrize(
    ("version", "angles"),
    [
        ("v1", {"yaw": 19, "pitch": PITCH_BIAS - 19, "roll": 29}),
        ("v1", {"yaw": -19, "pitch": PITCH_BIAS + 19, "roll": -29}),
        ("v2", {"yaw": 24, "pitch": PITCH_BIAS + 24, "roll": 24}),
    ],
)
def test_head_pose_within_range_passes(version: Version, angles: dict[str, float]) -> None:
    check_faces(version, *SIZE[version], [face(**angles)])
