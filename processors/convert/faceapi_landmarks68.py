"""face-api's 68-point face landmark net as ONNX, from @vladmandic/face-api's tfjs weights.

face-api ships `face_landmark_68_model` (FaceLandmark68Net) as a tfjs weights manifest; this
rebuilds its forward pass (src/faceFeatureExtractor/FaceFeatureExtractor.ts, denseBlock.ts,
src/faceProcessor/FaceProcessor.ts) with numpy + onnx only.

Graph: input `input` float32 [N, 112, 112, 3], a square face crop as RGB 0-255, HWC like
face-api's tensors; output `landmarks` float32 [N, 136]: x0, y0, x1, y1, ... as fractions of the
crop's side (face-api's postProcess multiplies by the input size, for a square input). Batch is
dynamic.

The network: (x - mean RGB) / 255, four dense blocks (32, 64, 128, 256 channels), each a stride 2
conv (a plain 3x3 conv in the first block, depthwise-separable after) then three
depthwise-separable 3x3 convs, each fed the relu of the sum of all the block's earlier outputs
(from its first conv on); 7x7/2 average pool (7x7 -> 1x1), fully connected 256 -> 136.
Convolutions pad as tfjs 'same' does: at stride 2 on an even size, one pixel at the bottom and
right only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper

from processors.convert.faceapi_resnet import Weights, dequantize
from processors.convert.graph import GraphBuilder, serialize

INPUT_SIZE = 112
OUTPUTS = 136
MEAN_RGB = (122.782, 117.001, 104.298)
PIXEL_SCALE = 255.0
BLOCKS = ("dense0", "dense1", "dense2", "dense3")


class FaceApiBuilder(GraphBuilder):
    """face-api's layers over its 112x112 nets' weights (also the attribute nets')."""

    def __init__(self, weights: Weights) -> None:
        super().__init__()
        self.weights = weights

    def normalized_input(self) -> str:
        """`input` (NHWC RGB 0-255) as the nets read it: (x - mean RGB) / 255, NCHW."""
        mean = self.constant("mean_rgb", np.array(MEAN_RGB, np.float32))
        scale = self.constant("pixel_scale", np.array(1.0 / PIXEL_SCALE, np.float32))
        x = self.node("Sub", ["input", mean], "centered")
        x = self.node("Mul", [x, scale], "normalized")
        return self.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])

    def pooled(self, x: str) -> str:
        """The 7x7/2 valid average pool (7x7 -> 1x1) every head reads, flattened."""
        x = self.node("AveragePool", [x], "pool", kernel_shape=[7, 7], strides=[2, 2])
        return self.node("Flatten", [x], "pooled", axis=1)

    def fully_connected(self, x: str, prefix: str, output: str) -> str:
        w = self.constant(f"{prefix}/w", self.weights[f"{prefix}/weights"])  # [in, out]
        x = self.node("MatMul", [x, w], prefix)
        return self.node(
            "Add", [x, self.constant(f"{prefix}/b", self.weights[f"{prefix}/bias"])], output
        )

    @staticmethod
    def _same_pads(stride: int) -> list[int]:
        # tfjs 'same', 3x3: stride 1 pads 1 each side; stride 2 on an even size pads 1 at the end.
        return [1, 1, 1, 1] if stride == 1 else [0, 0, 1, 1]

    def conv(self, x: str, prefix: str, stride: int) -> str:
        """A plain 3x3 conv + bias (the first block's first layer)."""
        filters = self.weights[f"{prefix}/filters"]  # tfjs HWIO
        w = self.constant(f"{prefix}/w", filters.transpose(3, 2, 0, 1).copy())
        b = self.constant(f"{prefix}/b", self.weights[f"{prefix}/bias"])
        return self.node(
            "Conv", [x, w, b], f"{prefix}/conv", kernel_shape=[3, 3],
            strides=[stride, stride], pads=self._same_pads(stride),
        )  # fmt: skip

    def separable(self, x: str, prefix: str, stride: int) -> str:
        """tf.separableConv2d + bias: a depthwise 3x3 (strided), then a pointwise 1x1."""
        depthwise = self.weights[f"{prefix}/depthwise_filter"]  # [3, 3, C, 1]
        pointwise = self.weights[f"{prefix}/pointwise_filter"]  # [1, 1, C, O]
        channels = depthwise.shape[2]
        dw = self.constant(f"{prefix}/dw", depthwise.transpose(2, 3, 0, 1).copy())
        pw = self.constant(f"{prefix}/pw", pointwise.transpose(3, 2, 0, 1).copy())
        b = self.constant(f"{prefix}/b", self.weights[f"{prefix}/bias"])
        out = self.node(
            "Conv", [x, dw], f"{prefix}/depthwise", kernel_shape=[3, 3], group=channels,
            strides=[stride, stride], pads=self._same_pads(stride),
        )  # fmt: skip
        return self.node("Conv", [out, pw, b], f"{prefix}/pointwise", kernel_shape=[1, 1])

    def dense_block(self, x: str, prefix: str, first: bool) -> str:
        """denseBlock4: each later conv reads relu(sum of the block's outputs so far)."""
        head = self.conv if first else self.separable
        outputs = [self.node("Relu", [head(x, f"{prefix}/conv0", 2)], f"{prefix}/out0")]
        total = outputs[0]
        for index in (1, 2, 3):
            outputs.append(self.separable(total, f"{prefix}/conv{index}", 1))
            total = self.node("Sum", outputs, f"{prefix}/sum{index}")
            total = self.node("Relu", [total], f"{prefix}/in{index + 1}")
        return total

    def dense_features(self, x: str) -> str:
        """FaceFeatureExtractor's four dense blocks: [N, 256, 7, 7]."""
        for index, block in enumerate(BLOCKS):
            x = self.dense_block(x, block, first=index == 0)
        return x


def build_onnx(manifest: list[dict[str, Any]], weight_files: dict[str, bytes]) -> bytes:
    """The serialized ONNX model of face-api's FaceLandmark68Net.

    `manifest` is the parsed `face_landmark_68_model-weights_manifest.json`, `weight_files` maps
    each shard path it names (`face_landmark_68_model.bin`) to that file's bytes.
    """
    g = FaceApiBuilder(dequantize(manifest, weight_files))
    g.fully_connected(g.pooled(g.dense_features(g.normalized_input())), "fc", "landmarks")

    inputs = [
        helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", INPUT_SIZE, INPUT_SIZE, 3])
    ]
    outputs = [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", OUTPUTS])]
    return serialize(g, "faceapi_landmark68", inputs, outputs)
