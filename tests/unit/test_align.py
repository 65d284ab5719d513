"""Alignment to the shared sample, and the rough head pose from five points."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from processors.align import (
    ARCFACE_112_TEMPLATE,
    NOSE_DEPTH,
    SAMPLE_SIZE,
    SAMPLE_TEMPLATE,
    eye_distance,
    head_pose,
    similarity_transform,
    warp,
)


def test_sample_template_is_the_shared_contract() -> None:
    assert SAMPLE_SIZE == 250
    assert SAMPLE_TEMPLATE.dtype == np.float32
    np.testing.assert_allclose(SAMPLE_TEMPLATE, ARCFACE_112_TEMPLATE * 1.5 + 41)


def test_similarity_transform_recovers_a_known_one() -> None:
    angle, scale, shift = math.radians(23), 1.7, np.array([12.0, -30.0])
    rotation = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    moved = ARCFACE_112_TEMPLATE @ rotation.T + shift
    matrix = similarity_transform(ARCFACE_112_TEMPLATE, moved.astype(np.float32))
    np.testing.assert_allclose(matrix, np.hstack([rotation, shift[:, None]]), atol=1e-4)


def test_similarity_transform_never_reflects() -> None:
    mirrored = ARCFACE_112_TEMPLATE * np.array([-1, 1], np.float32)
    matrix = similarity_transform(ARCFACE_112_TEMPLATE, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_warp_puts_the_landmarks_on_the_template() -> None:
    # A face drawn as five dots, rotated, scaled and moved in a larger image.
    angle = math.radians(-15)
    rotation = 2.2 * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    landmarks = (ARCFACE_112_TEMPLATE @ rotation.T + [180, 140]).astype(np.float32)
    image = np.zeros((480, 640, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 4, (255, 255, 255), -1)
    sample = warp(image, landmarks)
    assert sample.shape == (SAMPLE_SIZE, SAMPLE_SIZE, 3) and sample.dtype == np.uint8
    _, _, _, centroids = cv2.connectedComponentsWithStats(sample[:, :, 0])
    found = centroids[1:]
    for point in SAMPLE_TEMPLATE:
        assert np.linalg.norm(found - point, axis=1).min() < 0.5


def test_eye_distance() -> None:
    assert eye_distance(ARCFACE_112_TEMPLATE) == pytest.approx(35.2377, abs=1e-3)


def _project(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The template face as a 3D head, nose NOSE_DEPTH eye gaps in front, turned, seen from afar."""
    centre = ARCFACE_112_TEMPLATE.mean(axis=0)
    points = np.zeros((5, 3))
    points[:, :2] = ARCFACE_112_TEMPLATE - centre
    points[[0, 1, 3, 4], 2] = -NOSE_DEPTH * eye_distance(ARCFACE_112_TEMPLATE)
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    # x right, y down, z towards the camera; a positive yaw brings the nose to the image right.
    turn = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    nod = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    tilt = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    moved = points @ (tilt @ nod @ turn).T
    return (moved[:, :2] * 3 + [320, 240]).astype(np.float32)


def test_head_pose_of_the_template_is_frontal() -> None:
    yaw, pitch, roll = head_pose(ARCFACE_112_TEMPLATE)
    assert abs(yaw) < 1 and abs(pitch) < 1 and abs(roll) < 1


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll"),
    [(30, 0, 0), (-45, 0, 0), (0, 20, 0), (0, -25, 0), (0, 0, 35), (0, 0, -10), (15, -10, 20)],
)
def test_head_pose_reads_a_turned_head(yaw: float, pitch: float, roll: float) -> None:
    estimate = head_pose(_project(yaw, pitch, roll))
    # Exact for one rotation of the model face. Combined, they interact: turned and nodded,
    # the eye line itself tilts (about atan(tan(yaw) * sin(pitch)), 2.7 degrees here).
    tolerance = 1.0 if [yaw, pitch, roll].count(0) == 2 else 4.0
    np.testing.assert_allclose(estimate, (yaw, pitch, roll), atol=tolerance)
