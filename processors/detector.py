"""YuNet 2023mar face detector (OpenCV Zoo): boxes and five landmarks, as cv2.FaceDetectorYN.

SFace's reference pipeline (cv2.FaceDetectorYN + FaceRecognizerSF.alignCrop) runs YuNet at the
image's own size, padded bottom/right to a multiple of 32; its landmarks, and so the descriptors,
are those of that run and of no other. A different scale or more black padding (deeper layers
see a bias, not zeros) moves the points by percents of the eye distance, costing ~0.01 cosine
per 2 %. So images that fit COARSE_SIZE run at their own size; larger ones get a shrunk coarse
pass that finds the faces, then a native-scale pass over a crop around each face whose origin is
on the 32-px anchor grid of the full image, with enough context that the receptive fields see
the same pixels: the points are then the full-size run's, at a fraction of its cost.

The ONNX graph (processors.convert.yunet: height and width free) returns, for each stride,
per-cell class and objectness scores, a box and five points relative to the cell; decoding
follows OpenCV's FaceDetectorYN::postProcess (objdetect/src/face_detect.cpp).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from processors.session import create_session
from processors.types import Detection, ImageBGR

_OUTPUT_NAME = re.compile(r"^(cls|obj|bbox|kps)_(\d+)$")
_KINDS = ("cls", "obj", "bbox", "kps")

COARSE_SIZE = 640  # the published input size: larger images are shrunk into it to find faces
GRID = 32  # the largest stride: the anchor grid, and what FaceDetectorYN pads to
# The native-scale pass: a crop of CONTEXT times the face's box, at least MIN_SIDE px (less
# moves the points of small faces by up to 12 % of the eye distance; measured on bald_guys.jpg).
REFINE_CONTEXT = 3.0
REFINE_MIN_SIDE = 640
# The fine pass looks for the coarse face down to this score (it is known to be there), then
# keeps it if its native-scale score passes the threshold, as the full-size run would.
REFINE_THRESHOLD = 0.5
REFINE_MIN_IOU = 0.3  # the fine detection must be the coarse one
# At its native scale YuNet loses faces much wider than this (Tom_Cruise_avp_2014_4.jpg, face
# 414 px wide, scaled 1/1.2/1.5/2x: scores 0.90/0.85/missed/missed, cv2.FaceDetectorYN alike),
# while the shrunk coarse pass finds them at 0.93: wider faces keep their coarse detection.
REFINE_MAX_FACE = 448
# Crops covering this much of the image cost about one full-size run: run that instead.
FULL_RUN_COVER = 0.75

Region = tuple[int, int, int, int]  # x0, y0, x1, y1


class YuNetDetector:
    def __init__(
        self,
        model_path: Path | str,
        *,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        threads: int | None = None,
    ) -> None:
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.session = create_session(model_path, threads=threads)
        model_input = self.session.get_inputs()[0]
        self.input_name: str = model_input.name
        batch, _, height, width = model_input.shape
        if isinstance(height, int) or isinstance(width, int):
            raise ValueError(
                f"{model_path}: YuNet input fixed at {height}x{width}, this code runs it at each "
                "image's size: run `facestream models pull`"
            )
        # A fixed batch dimension (the file as published: 1) means one image per run.
        self.batch_fixed = isinstance(batch, int)

        # Outputs are named cls_8 ... kps_32: group them by stride, smallest stride first.
        outputs: dict[int, dict[str, str]] = {}
        for output in self.session.get_outputs():
            match = _OUTPUT_NAME.match(output.name)
            if match is None:
                raise ValueError(f"{model_path}: unexpected YuNet output {output.name!r}")
            outputs.setdefault(int(match[2]), {})[match[1]] = output.name
        self.strides = sorted(outputs)
        self.output_names = [outputs[s][kind] for s in self.strides for kind in _KINDS]

    @staticmethod
    def coarse_frame(image: ImageBGR) -> tuple[ImageBGR, float]:
        """The image shrunk to fit COARSE_SIZE (never enlarged: YuNet scores and places faces
        that fill an enlarged frame worse), and the scale."""
        scale = min(1.0, COARSE_SIZE / image.shape[1], COARSE_SIZE / image.shape[0])
        if scale == 1:
            return image, scale
        # At least one pixel: a 1x5000 image shrinks its short side to 0.13, not to nothing.
        size = (
            max(1, min(COARSE_SIZE, round(image.shape[1] * scale))),
            max(1, min(COARSE_SIZE, round(image.shape[0] * scale))),
        )
        # INTER_AREA averages the pixels it drops, so small faces do not alias away.
        return cast(ImageBGR, cv2.resize(image, size, interpolation=cv2.INTER_AREA)), scale

    def detect(self, image: ImageBGR) -> list[Detection]:
        """Faces in `image`, best score first; boxes may reach past the image border."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[list[Detection]]:
        """detect() for each image; frames of one padded size share a run if the batch is free."""
        frames = [self.coarse_frame(image) for image in images]
        found = self._detect_frames([frame for frame, _ in frames], self.score_threshold)
        return [
            faces if scale == 1 else self.refine(image, [_scaled(f, 1 / scale) for f in faces])
            for image, (_, scale), faces in zip(images, frames, found, strict=True)
        ]

    def refine(self, image: ImageBGR, faces: list[Detection]) -> list[Detection]:
        """`faces` (found on a shrunk copy) with box, points and score of a native-scale run;
        those it scores below the threshold dropped (a dog in dogs.jpg: 0.86 shrunk, 0.78).
        Faces wider than REFINE_MAX_FACE px stay as found."""
        large = [face for face in faces if face.width > REFINE_MAX_FACE]
        faces = [face for face in faces if face.width <= REFINE_MAX_FACE]
        regions = refine_regions(image.shape[1], image.shape[0], faces) if faces else []
        crops = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in regions]
        fine = [
            _shifted(face, x0, y0)
            for (x0, y0, _, _), found in zip(
                regions, self._detect_frames(crops, REFINE_THRESHOLD), strict=True
            )
            for face in found
        ]
        refined = []
        for face in faces:
            overlaps = [_iou(face, candidate) for candidate in fine]
            best = int(np.argmax(overlaps)) if overlaps else -1
            refined.append(fine[best] if best >= 0 and overlaps[best] >= REFINE_MIN_IOU else face)
        kept = [face for face in refined if face.score >= self.score_threshold]
        return sorted(kept + large, key=lambda f: -f.score)

    def _detect_frames(self, frames: Sequence[ImageBGR], threshold: float) -> list[list[Detection]]:
        """Each frame at its own size padded bottom/right to the grid, as FaceDetectorYN runs it."""
        padded = [_pad_to_grid(frame) for frame in frames]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(padded):
            groups.setdefault(frame.shape if not self.batch_fixed else (i,), []).append(i)
        outputs: list[list[npt.NDArray[np.float32]]] = [[] for _ in frames]
        for members in groups.values():
            blob = np.stack([padded[i] for i in members]).transpose(0, 3, 1, 2).astype(np.float32)
            run = self._run(blob)
            for k, i in enumerate(members):
                outputs[i] = [o[k : k + 1] for o in run]
        return [
            self._decode(out, frame.shape[1], threshold)
            for out, frame in zip(outputs, padded, strict=True)
        ]

    def _run(self, blob: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        outputs = self.session.run(self.output_names, {self.input_name: blob})
        # Each output is (cells, channels) per image; the published graph reshapes to
        # (1, N * cells, C), a dynamic-batch export to (N, cells, C): both are batch-major.
        return [o.reshape(len(blob), -1, o.shape[-1]) for o in outputs]

    def _decode(
        self, outputs: list[npt.NDArray[np.float32]], width: int, threshold: float
    ) -> list[Detection]:
        """Decode one run's outputs (leading axis 1) of a `width`-pixel-wide input."""
        boxes, points, scores = [], [], []
        for i, stride in enumerate(self.strides):
            cls, obj, bbox, kps = (o[0] for o in outputs[4 * i : 4 * i + 4])
            score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            cells = np.flatnonzero(score >= threshold)
            if not cells.size:
                continue
            cols = width // stride
            anchor = np.stack([cells % cols, cells // cols], axis=1).astype(np.float32)
            centre = (anchor + bbox[cells, :2]) * stride
            size = np.exp(bbox[cells, 2:]) * stride
            boxes.append(np.concatenate([centre - size / 2, size], axis=1))
            points.append((kps[cells].reshape(-1, 5, 2) + anchor[:, None, :]) * stride)
            scores.append(score[cells])
        if not scores:
            return []
        all_boxes = np.concatenate(boxes)
        all_points = np.concatenate(points)
        all_scores = np.concatenate(scores)
        keep = cv2.dnn.NMSBoxes(
            all_boxes.tolist(), all_scores.tolist(), threshold, self.nms_threshold, top_k=self.top_k
        )
        # NMSBoxes returns indices best score first.
        return [
            Detection(
                x=float(all_boxes[k, 0]),
                y=float(all_boxes[k, 1]),
                width=float(all_boxes[k, 2]),
                height=float(all_boxes[k, 3]),
                score=float(all_scores[k]),
                landmarks=all_points[k].astype(np.float32),
            )
            for k in np.asarray(keep, dtype=np.int64).reshape(-1)
        ]


def _pad_to_grid(image: ImageBGR) -> ImageBGR:
    height, width = image.shape[:2]
    bottom, right = -height % GRID, -width % GRID
    if not (bottom or right):
        return image
    return cast(ImageBGR, cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_CONSTANT))


def refine_regions(width: int, height: int, faces: Sequence[Detection]) -> list[Region]:
    """Grid-aligned crops around the faces, overlapping ones merged; the whole image when they
    would cover most of it anyway."""
    regions: list[Region] = []
    for face in faces:
        side = max(REFINE_CONTEXT * max(face.width, face.height), REFINE_MIN_SIDE)
        cx, cy = face.x + face.width / 2, face.y + face.height / 2
        # Origin down to the grid; end up to it, or to the image's edge, where the crop's
        # padding is the full run's.
        x0 = max(0, math.floor((cx - side / 2) / GRID) * GRID)
        y0 = max(0, math.floor((cy - side / 2) / GRID) * GRID)
        x1 = min(width, math.ceil((cx + side / 2) / GRID) * GRID)
        y1 = min(height, math.ceil((cy + side / 2) / GRID) * GRID)
        regions.append((x0, y0, x1, y1))
    merged: list[Region] = []  # pairwise disjoint
    for region in regions:
        # A union of grid-aligned regions is grid-aligned; it may reach others: absorb them too.
        while (hit := next((m for m in merged if _overlap(m, region)), None)) is not None:
            merged.remove(hit)
            region = (
                min(region[0], hit[0]),
                min(region[1], hit[1]),
                max(region[2], hit[2]),
                max(region[3], hit[3]),
            )
        merged.append(region)
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in merged)
    return [(0, 0, width, height)] if area >= FULL_RUN_COVER * width * height else merged


def _overlap(a: Region, b: Region) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _scaled(face: Detection, factor: float) -> Detection:
    return Detection(
        x=face.x * factor,
        y=face.y * factor,
        width=face.width * factor,
        height=face.height * factor,
        score=face.score,
        landmarks=(face.landmarks * factor).astype(np.float32),
    )


def _shifted(face: Detection, dx: int, dy: int) -> Detection:
    return Detection(
        x=face.x + dx,
        y=face.y + dy,
        width=face.width,
        height=face.height,
        score=face.score,
        landmarks=(face.landmarks + np.array([dx, dy], np.float32)).astype(np.float32),
    )


def _iou(a: Detection, b: Detection) -> float:
    width = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    height = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = width * height
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0
