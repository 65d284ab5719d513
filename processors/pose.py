"""Head pose (yaw, pitch, roll) from 68 face landmarks, by fitting a generic 3D head to them.

processors.align.head_pose reads the angles from YuNet's five points: roughly, and with YuNet's
bias toward upright on tilted faces (a face turned 40 degrees in the image read as 24). Here the
68 points of face-api's landmark net (processors.landmarks68, cut upright first) are fitted with
cv2.solvePnP to MEAN_FACE_68, which gives all three angles of a rigid head.

Angles in degrees, the head's rotation as R = Rz(roll) Rx(pitch) Ry(-yaw) in OpenCV's camera
frame (x right, y down, z away from the camera), with these signs:
- yaw: positive when the nose points to the image right (the subject turns to their left);
- pitch: positive when the subject looks down;
- roll: positive when the face is turned clockwise in the image (the eye line's angle).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from processors import align
from processors.landmarks68 import FaceLandmarks68, Landmarks68
from processors.types import Detection, ImageBGR

# The mean 3D face of OpenFace's point distribution model, iBUG 68-point order, in mm: x right,
# y down, z away from the camera (a frontal face has R = identity). Source: OpenFace
# (Baltrusaitis et al.), lib/local/LandmarkDetector/model/pdms/In-the-wild_aligned_PDM_68.txt,
# as yinguobing/head-pose-estimation ships it (assets/model.txt, x, y, z columns; that project
# then flips z, this one does not).
MEAN_FACE_68: npt.NDArray[np.float64] = np.array(
    [
        [-73.393523, -29.801432, 47.667532],
        [-72.775014, -10.949766, 45.909403],
        [-70.533638, 7.929818, 44.842580],
        [-66.850058, 26.074280, 43.141114],
        [-59.790187, 42.564390, 38.635298],
        [-48.368973, 56.481080, 30.750622],
        [-34.121101, 67.246992, 18.456453],
        [-17.875411, 75.056892, 3.609035],
        [0.098749, 77.061286, -0.881698],
        [17.477031, 74.758448, 5.181201],
        [32.648966, 66.929021, 19.176563],
        [46.372358, 56.311389, 30.770570],
        [57.343480, 42.419126, 37.628629],
        [64.388482, 25.455880, 40.886309],
        [68.212038, 6.990805, 42.281449],
        [70.486405, -11.666193, 44.142567],
        [71.375822, -30.365191, 47.140426],
        [-61.119406, -49.361602, 14.254422],
        [-51.287588, -58.769795, 7.268147],
        [-37.804800, -61.996155, 0.442051],
        [-24.022754, -61.033399, -6.606501],
        [-11.635713, -56.686759, -11.967398],
        [12.056636, -57.391033, -12.051204],
        [25.106256, -61.902186, -7.315098],
        [38.338588, -62.777713, -1.022953],
        [51.191007, -59.302347, 5.349435],
        [60.053851, -50.190255, 11.615746],
        [0.653940, -42.193790, -13.380835],
        [0.804809, -30.993721, -21.150853],
        [0.992204, -19.944596, -29.284036],
        [1.226783, -8.414541, -36.948060],
        [-14.772472, 2.598255, -20.132003],
        [-7.180239, 4.751589, -23.536684],
        [0.555920, 6.562900, -25.944448],
        [8.272499, 4.661005, -23.695741],
        [15.214351, 2.643046, -20.858157],
        [-46.047290, -37.471411, 7.037989],
        [-37.674688, -42.730510, 3.021217],
        [-27.883856, -42.711517, 1.353629],
        [-19.648268, -36.754742, -0.111088],
        [-28.272965, -35.134493, -0.147273],
        [-38.082418, -34.919043, 1.476612],
        [19.265868, -37.032306, -0.665746],
        [27.894191, -43.342445, 0.247660],
        [37.437529, -43.110822, 1.696435],
        [45.170805, -38.086515, 4.894163],
        [38.196454, -35.532024, 0.282961],
        [28.764989, -35.484289, -1.172675],
        [-28.916267, 28.612716, -2.240310],
        [-17.533194, 22.172187, -15.934335],
        [-6.684590, 19.029051, -22.611355],
        [0.381001, 20.721118, -23.748437],
        [8.375443, 19.035460, -22.721995],
        [18.876618, 22.394109, -15.610679],
        [28.794412, 28.079924, -3.217393],
        [19.057574, 36.298248, -14.987997],
        [8.956375, 39.634575, -22.554245],
        [0.381549, 40.395647, -23.591626],
        [-7.428895, 39.836405, -22.406106],
        [-18.160634, 36.677899, -15.121907],
        [-24.377490, 28.677771, -4.785684],
        [-6.897633, 25.475976, -20.893742],
        [0.340663, 26.014269, -22.220479],
        [8.444722, 25.326198, -21.025520],
        [24.474473, 28.323008, -5.712776],
        [8.449166, 30.596216, -20.671489],
        [0.205322, 31.408738, -21.903670],
        [-7.198266, 30.844876, -20.328022],
    ],
    dtype=np.float64,
)

# The camera: unknown, so a lens whose focal length is FOCAL_RADII times the face's RMS radius
# in pixels (the head about FOCAL_RADII RMS radii, ~50 cm for an adult, from the lens), its
# principal point at the face's centre. Far enough that perspective barely matters.
FOCAL_RADII = 10.0
_MODEL_RMS = float(np.sqrt(((MEAN_FACE_68 - MEAN_FACE_68.mean(axis=0)) ** 2).sum(axis=1).mean()))


@dataclass(frozen=True, slots=True)
class HeadPose:
    yaw: float
    pitch: float
    roll: float


# How a caller measures a detection's head pose: a PoseEstimator's `estimate` bound to the
# image, or five_point.
PoseOf = Callable[[Detection], HeadPose]


def from_landmarks(points: Landmarks68) -> HeadPose:
    """The pose of the generic head that projects nearest to these 68 points (image pixels)."""
    image = points.astype(np.float64)
    centre = image.mean(axis=0)
    radius = float(np.sqrt(((image - centre) ** 2).sum(axis=1).mean()))
    focal = FOCAL_RADII * radius
    camera = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], np.float64)
    # Start from a frontal head at the distance its size implies: the iterative solver then
    # settles on the near solution rather than a mirrored one behind the camera.
    rvec = np.zeros(3)
    tvec = np.array([0.0, 0.0, FOCAL_RADII * _MODEL_RMS])
    _, fitted, _ = cv2.solvePnP(
        MEAN_FACE_68, image, camera, None, rvec, tvec, useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )  # fmt: skip
    rotation, _ = cv2.Rodrigues(fitted)
    return angles(np.asarray(rotation, np.float64))


def angles(rotation: npt.NDArray[np.float64]) -> HeadPose:
    """Yaw, pitch, roll of R = Rz(roll) Rx(pitch) Ry(-yaw) (see the module's doc)."""
    pitch = math.asin(max(-1.0, min(1.0, float(rotation[2, 1]))))
    yaw = math.atan2(float(rotation[2, 0]), float(rotation[2, 2]))
    roll = math.atan2(-float(rotation[0, 1]), float(rotation[1, 1]))
    return HeadPose(math.degrees(yaw), math.degrees(pitch), math.degrees(roll))


def rotation_of(pose: HeadPose) -> npt.NDArray[np.float64]:
    """The inverse of `angles`: R = Rz(roll) Rx(pitch) Ry(-yaw)."""
    y, p, r = (math.radians(a) for a in (-pose.yaw, pose.pitch, pose.roll))
    turn = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    nod = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    tilt = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rotation: npt.NDArray[np.float64] = tilt @ nod @ turn
    return rotation


# What each estimate reads as pitch on near-frontal faces (dlib's examples/johns, 55 portraits):
# the 68-point fit +7.0 (sd 6.6; face-api's points sit where the mean face's do when nodded
# slightly), the five-point one +9 (align.head_pose). Subtracted, so frontal reads 0.
PITCH_BIAS_68 = 7.0
PITCH_BIAS_5 = 9.0


class PoseEstimator:
    """Head pose of detected faces: the 68-point net on an upright crop, then the 3D fit."""

    def __init__(self, landmarks: FaceLandmarks68) -> None:
        self.landmarks = landmarks

    def estimate(self, image: ImageBGR, detection: Detection) -> HeadPose:
        fit = from_landmarks(self.landmarks.detect(image, detection.landmarks))
        return HeadPose(fit.yaw, fit.pitch - PITCH_BIAS_68, fit.roll)


def five_point(detection: Detection) -> HeadPose:
    """The rough fallback from YuNet's five points alone (align.head_pose; see its limits)."""
    yaw, pitch, roll = align.head_pose(detection.landmarks)
    return HeadPose(yaw, pitch - PITCH_BIAS_5, roll)
