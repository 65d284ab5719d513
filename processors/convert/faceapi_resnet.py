"""dlib's ResNet face descriptor (v1, 128-d) as ONNX, from @vladmandic/face-api's tfjs weights.

face-api ships dlib's `dlib_face_recognition_resnet_model_v1` weights as a tfjs weights manifest
(uint8-quantized tensors) and re-implements the network in JS as FaceRecognitionNet. This module
rebuilds that forward pass with onnx.helper, with numpy + onnx only (no TensorFlow).

Graph: input `input` float32 [N, 150, 150, 3], a dlib face chip as RGB 0-255, HWC like face-api's
tensors; output `descriptor` float32 [N, 128], not normalised. Batch is dynamic.

The network (dlib's `anet_type`, strides and paddings as face-api ports them):
  (x - mean RGB) / 256, conv 7x7/2 valid (32), maxpool 3x3/2 valid,
  residual 32 x3, residual_down 64 + residual 64 x3, residual_down 128 + residual 128 x2,
  residual_down 256 + residual 256 x2, residual_down 256, global average, fc 256 -> 128.
Every conv is followed by a per-channel scale layer (dlib's `affine`, batch norm frozen); it is
folded into the conv's weights and bias here, which is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from onnx import TensorProto, helper

from processors.convert.graph import GraphBuilder, serialize

INPUT_SIZE = 150
DIMENSION = 128
MEAN_RGB = (122.782, 117.001, 104.298)
# dlib's input_rgb_image_sized divides by 256; face-api's port divides by 255, a 0.4 % input
# gain the network was not trained with.
PIXEL_SCALE = 256.0

# The residual stages in forward order: (weight prefix, whether it downsamples).
STAGES: tuple[tuple[str, bool], ...] = (
    ("conv32_1", False),
    ("conv32_2", False),
    ("conv32_3", False),
    ("conv64_down", True),
    ("conv64_1", False),
    ("conv64_2", False),
    ("conv64_3", False),
    ("conv128_down", True),
    ("conv128_1", False),
    ("conv128_2", False),
    ("conv256_down", True),
    ("conv256_1", False),
    ("conv256_2", False),
    ("conv256_down_out", True),
)

Weights = dict[str, npt.NDArray[np.float32]]

_QUANTIZED: dict[str, np.dtype[Any]] = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2")}


def dequantize(manifest: list[dict[str, Any]], weight_files: dict[str, bytes]) -> Weights:
    """Every tensor of a tfjs weights manifest as float32, in its tfjs shape.

    Each manifest group's shards concatenate into one buffer holding its tensors back to back;
    a quantized tensor stores `q` and means `q * scale + min`, as tfjs decodes it.
    """
    weights: Weights = {}
    for group in manifest:
        buffer = b"".join(weight_files[path] for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            if entry["dtype"] != "float32":
                raise ValueError(f"{entry['name']}: unexpected dtype {entry['dtype']}")
            count = int(np.prod(entry["shape"], dtype=np.int64))
            quantization = entry.get("quantization")
            stored: np.dtype[Any] = np.dtype("<f4")
            if quantization is not None:
                if quantization["dtype"] not in _QUANTIZED:
                    raise ValueError(f"{entry['name']}: unsupported quantization {quantization}")
                stored = _QUANTIZED[quantization["dtype"]]
            raw = np.frombuffer(buffer, dtype=stored, count=count, offset=offset)
            offset += count * stored.itemsize
            values = raw.astype(np.float32)
            if quantization is not None:
                scale, low = np.float32(quantization["scale"]), np.float32(quantization["min"])
                values = values * scale + low
            weights[entry["name"]] = values.reshape(entry["shape"])
        if offset != len(buffer):
            raise ValueError(f"shards {group['paths']}: {len(buffer) - offset} bytes left over")
    return weights


class _ResNetBuilder(GraphBuilder):
    """Adds face-api's layers, tracking the static spatial size and channel count."""

    def __init__(self, weights: Weights) -> None:
        super().__init__()
        self.weights = weights
        self.size = INPUT_SIZE
        self.channels = 3

    def conv(self, x: str, prefix: str, *, stride: int, relu: bool) -> str:
        """face-api's convLayer: conv + bias, then the scale layer (folded), then maybe relu.

        Stride 2 convs are 'valid', stride 1 convs 'same' (3x3, so 1 pixel each side).
        """
        filters = self.weights[f"{prefix}/conv/filters"]  # tfjs HWIO
        bias = self.weights[f"{prefix}/conv/bias"]
        gain = self.weights[f"{prefix}/scale/weights"]
        shift = self.weights[f"{prefix}/scale/biases"]
        kernel = filters.shape[0]
        pad = 0 if stride == 2 else kernel // 2
        w = self.constant(f"{prefix}/w", (filters * gain).transpose(3, 2, 0, 1).copy())
        b = self.constant(f"{prefix}/b", bias * gain + shift)
        out = self.node(
            "Conv",
            [x, w, b],
            f"{prefix}/conv",
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
        )
        self.size = (self.size + 2 * pad - kernel) // stride + 1
        self.channels = filters.shape[3]
        return self.node("Relu", [out], f"{prefix}/relu") if relu else out

    def residual(self, x: str, prefix: str) -> str:
        out = self.conv(x, f"{prefix}/conv1", stride=1, relu=True)
        out = self.conv(out, f"{prefix}/conv2", stride=1, relu=False)
        out = self.node("Add", [out, x], f"{prefix}/add")
        return self.node("Relu", [out], f"{prefix}/out")

    def residual_down(self, x: str, prefix: str) -> str:
        """The shortcut is a 2x2/2 average pool, zero-padded to the branch's channels.

        Where the pool (floor) and the 3x3/2 valid conv disagree on size (8 -> 4 vs 3, 4 -> 2
        vs 1), face-api, like dlib's add_prev, zero-pads the conv branch at the bottom and right.
        """
        in_size, in_channels = self.size, self.channels
        out = self.conv(x, f"{prefix}/conv1", stride=2, relu=True)
        out = self.conv(out, f"{prefix}/conv2", stride=1, relu=False)
        pooled = self.node(
            "AveragePool", [x], f"{prefix}/pool", kernel_shape=[2, 2], strides=[2, 2]
        )
        pooled_size = (in_size - 2) // 2 + 1
        if pooled_size != self.size:
            grow = pooled_size - self.size
            pads = self.constant(
                f"{prefix}/pads", np.array([0, 0, 0, 0, 0, 0, grow, grow], np.int64)
            )
            out = self.node("Pad", [out, pads], f"{prefix}/pad")
            self.size = pooled_size
        if in_channels != self.channels:
            extra = self.channels - in_channels
            pads = self.constant(
                f"{prefix}/pool_pads", np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64)
            )
            pooled = self.node("Pad", [pooled, pads], f"{prefix}/pool_pad")
        out = self.node("Add", [pooled, out], f"{prefix}/add")
        return self.node("Relu", [out], f"{prefix}/out")


def build_onnx(manifest: list[dict[str, Any]], weight_files: dict[str, bytes]) -> bytes:
    """The serialized ONNX model of face-api's FaceRecognitionNet.

    `manifest` is the parsed `face_recognition_model-weights_manifest.json`, `weight_files` maps
    each shard path it names (`face_recognition_model.bin`) to that file's bytes.
    """
    g = _ResNetBuilder(dequantize(manifest, weight_files))
    mean = g.constant("mean_rgb", np.array(MEAN_RGB, np.float32))
    scale = g.constant("pixel_scale", np.array(1.0 / PIXEL_SCALE, np.float32))
    x = g.node("Sub", ["input", mean], "centered")
    x = g.node("Mul", [x, scale], "normalized")
    x = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])

    x = g.conv(x, "conv32_down", stride=2, relu=True)
    x = g.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2])
    g.size = (g.size - 3) // 2 + 1
    for prefix, down in STAGES:
        x = g.residual_down(x, prefix) if down else g.residual(x, prefix)

    x = g.node("GlobalAveragePool", [x], "global_avg")
    x = g.node("Flatten", [x], "pooled", axis=1)
    fc = g.constant("fc", g.weights["fc"])  # tfjs stores it [256, 128], ready for MatMul
    g.node("MatMul", [x, fc], "descriptor")

    inputs = [
        helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", INPUT_SIZE, INPUT_SIZE, 3])
    ]
    outputs = [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", DIMENSION])]
    return serialize(g, "dlib_resnet_v1", inputs, outputs)
