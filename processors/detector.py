"""YuNet 2023mar face detector (OpenCV Zoo): boxes and five landmarks, any image size.

The ONNX graph takes a fixed-size BGR 0-255 image and returns, for each stride, per-cell class
and objectness scores, a box and five points relative to the cell; decoding follows OpenCV's
FaceDetectorYN::postProcess (objdetect/src/face_detect.cpp) so results match cv2.FaceDetectorYN.
"""

from __future__ import annotations

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
        if not (isinstance(height, int) and isinstance(width, int)):
            raise ValueError(
                f"{model_path}: YuNet input must have a fixed size, got {height}x{width}"
            )
        self.input_size = (width, height)
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

    def letterbox(self, image: ImageBGR) -> tuple[npt.NDArray[np.uint8], float]:
        """The image on a black model-sized canvas, top-left, shrunk to fit if larger; the scale.

        Smaller images are not enlarged: YuNet scores faces that fill an enlarged frame lower
        (0.73-0.87 instead of 0.94 on dlib's 150x150 face chips) and places them worse, and
        cv2.FaceDetectorYN also runs at the image's own size. Padding right and bottom, as it
        pads to a multiple of 32, makes the way back to image coordinates one division.
        """
        width, height = self.input_size
        scale = min(1.0, width / image.shape[1], height / image.shape[0])
        canvas = np.zeros((height, width, 3), np.uint8)
        if scale < 1:
            # At least one pixel: a 1x5000 image shrinks its short side to 0.13, not to nothing.
            size = (
                max(1, min(width, round(image.shape[1] * scale))),
                max(1, min(height, round(image.shape[0] * scale))),
            )
            # INTER_AREA averages the pixels it drops, so small faces do not alias away.
            image = cast(ImageBGR, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        canvas[: image.shape[0], : image.shape[1]] = image
        return canvas, scale

    def detect(self, image: ImageBGR) -> list[Detection]:
        """Faces in `image`, best score first; boxes may reach past the image border."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageBGR]) -> list[list[Detection]]:
        """detect() for each image: in one run if the graph's batch size is free, else a loop."""
        if not images:
            return []
        boxed = [self.letterbox(image) for image in images]
        blob = np.stack([canvas for canvas, _ in boxed]).transpose(0, 3, 1, 2).astype(np.float32)
        if self.batch_fixed:
            runs = [self._run(blob[i : i + 1]) for i in range(len(images))]
        else:
            batch = self._run(blob)
            runs = [[output[i : i + 1] for output in batch] for i in range(len(images))]
        return [
            self._decode(outputs, scale) for outputs, (_, scale) in zip(runs, boxed, strict=True)
        ]

    def _run(self, blob: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        outputs = self.session.run(self.output_names, {self.input_name: blob})
        # Each output is (cells, channels) per image; the published graph reshapes to
        # (1, N * cells, C), a dynamic-batch export to (N, cells, C): both are batch-major.
        return [o.reshape(len(blob), -1, o.shape[-1]) for o in outputs]

    def _decode(self, outputs: list[npt.NDArray[np.float32]], scale: float) -> list[Detection]:
        """Decode one image's outputs (leading axis 1) and map them back to its pixels."""
        width, _ = self.input_size
        boxes, points, scores = [], [], []
        for i, stride in enumerate(self.strides):
            cls, obj, bbox, kps = (o[0] for o in outputs[4 * i : 4 * i + 4])
            score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            cells = np.flatnonzero(score >= self.score_threshold)
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
        all_boxes = np.concatenate(boxes) / scale
        all_points = np.concatenate(points) / scale
        all_scores = np.concatenate(scores)
        keep = cv2.dnn.NMSBoxes(
            all_boxes.tolist(),
            all_scores.tolist(),
            self.score_threshold,
            self.nms_threshold,
            top_k=self.top_k,
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
