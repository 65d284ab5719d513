"""Head pose from 68 points: the 3D fit on synthetic views of its own head model.

Real photos of known out-of-plane angles are not among the test data, so yaw and pitch are
measured here only against the model head turned and projected: this tests the solver and the
angle conventions, not the landmarks (tests/unit/test_landmarks68.py tests those, in plane).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from processors.pose import MEAN_FACE_68, HeadPose, angles, from_landmarks, rotation_of

YAWS = (-60, -40, -20, 0, 20, 40, 60)
PITCHES = (-40, -20, 0, 20, 40)
ROLLS = (-60, -30, 0, 30, 60)


def project(pose: HeadPose, distance: float, noise: float = 0.0) -> np.ndarray:
    """The model head turned by `pose`, `distance` mm from a 1000 px lens, centred at (320, 240),
    with Gaussian noise of `noise` px on each point (the face is ~200 px wide at 500 mm)."""
    centred = MEAN_FACE_68 - MEAN_FACE_68.mean(axis=0)
    turned = centred @ rotation_of(pose).T
    depth = turned[:, 2] + distance
    points = 1000.0 * turned[:, :2] / depth[:, None] + [320, 240]
    return (points + np.random.default_rng(0).normal(0, noise, points.shape)).astype(np.float32)


def test_angles_invert_rotation_of() -> None:
    for y, p, r in itertools.product(YAWS, PITCHES, ROLLS):
        got = angles(rotation_of(HeadPose(y, p, r)))
        assert (got.yaw, got.pitch, got.roll) == pytest.approx((y, p, r), abs=1e-9)


def test_signs_mean_what_the_docs_say() -> None:
    nose, right_eye, left_eye = 30, 36, 45
    frontal = project(HeadPose(0, 0, 0), 500)
    assert project(HeadPose(20, 0, 0), 500)[nose, 0] > frontal[nose, 0] + 10  # nose to the right
    assert project(HeadPose(0, 20, 0), 500)[nose, 1] > frontal[nose, 1] + 10  # looks down
    clockwise = project(HeadPose(0, 0, 20), 500)
    assert clockwise[left_eye, 1] > clockwise[right_eye, 1] + 10  # image-right eye lower


@pytest.mark.parametrize(
    ("distance", "noise", "tolerance"),
    # The fit's camera stands ~500 mm away: exact there; 2 px of noise (1 % of the face) costs
    # under a degree; a camera at 200 mm (strong perspective) or 1.5 m shifts yaw up to 4 degrees.
    [(500, 0.0, 0.5), (500, 2.0, 1.0), (200, 0.0, 4.5), (1500, 2.0, 4.5)],
)
def test_the_fit_recovers_every_angle(distance: float, noise: float, tolerance: float) -> None:
    worst = np.zeros(3)
    for y, p, r in itertools.product(YAWS, PITCHES, ROLLS):
        got = from_landmarks(project(HeadPose(y, p, r), distance, noise))
        worst = np.maximum(worst, np.abs([got.yaw - y, got.pitch - p, got.roll - r]))
    assert worst.max() < tolerance, worst
