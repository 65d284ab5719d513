"""face-api's age/gender and facial expression nets as ONNX, from @vladmandic/face-api's weights.

Both read what FaceLandmark68Net reads (processors.convert.faceapi_landmarks68): input `input`
float32 [N, 112, 112, 3], a square face crop as RGB 0-255, HWC; normalised (x - mean RGB) / 255.
Batch is dynamic.

AgeGenderNet (src/ageGenderNet/AgeGenderNet.ts, src/xception/TinyXception.ts): a TinyXception
with 2 main blocks -- conv 3x3/2 (32), reduction blocks to 64 and 128 channels, two residual main
blocks of three depthwise-separable convs, a reduction block to 256, a separable conv to 512 --
then the 7x7/2 average pool and two heads: `age` float32 [N] (years, a regression) and `gender`
float32 [N, 2], softmax over (male, female) as forwardInput gives it.

FaceExpressionNet (src/faceExpressionNet/FaceExpressionNet.ts, src/faceProcessor/): the landmark
net's FaceFeatureExtractor (dense blocks, then the pool) with a 256 -> 7 head: `expressions`
float32 [N, 7], softmax over EXPRESSIONS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper

from processors.convert.faceapi_landmarks68 import INPUT_SIZE, FaceApiBuilder
from processors.convert.faceapi_resnet import dequantize
from processors.convert.graph import serialize
from processors.types import EXPRESSIONS, GENDERS  # the heads' orders (probMale is index 0)

MAIN_BLOCKS = 2  # AgeGenderNet's TinyXception(2)


class _TinyXceptionBuilder(FaceApiBuilder):
    def expansion(self, x: str, prefix: str) -> str:
        """The shortcut's 1x1/2 conv + bias ('same' pads nothing for a 1x1 kernel)."""
        filters = self.weights[f"{prefix}/filters"]  # [1, 1, I, O]
        w = self.constant(f"{prefix}/w", filters.transpose(3, 2, 0, 1).copy())
        b = self.constant(f"{prefix}/b", self.weights[f"{prefix}/bias"])
        return self.node("Conv", [x, w, b], f"{prefix}/conv", kernel_shape=[1, 1], strides=[2, 2])

    def reduction_block(self, x: str, prefix: str, *, activate_input: bool = True) -> str:
        out = self.node("Relu", [x], f"{prefix}/relu_in") if activate_input else x
        out = self.separable(out, f"{prefix}/separable_conv0", 1)
        out = self.node("Relu", [out], f"{prefix}/relu0")
        out = self.separable(out, f"{prefix}/separable_conv1", 1)
        # tfjs maxPool 3x3/2 'same' on an even size: one padded (ignored) row/column at the end.
        out = self.node(
            "MaxPool", [out], f"{prefix}/maxpool", kernel_shape=[3, 3], strides=[2, 2],
            pads=[0, 0, 1, 1],
        )  # fmt: skip
        shortcut = self.expansion(x, f"{prefix}/expansion_conv")
        return self.node("Add", [out, shortcut], f"{prefix}/out")

    def main_block(self, x: str, prefix: str) -> str:
        out = x
        for index in range(3):
            out = self.node("Relu", [out], f"{prefix}/relu{index}")
            out = self.separable(out, f"{prefix}/separable_conv{index}", 1)
        return self.node("Add", [out, x], f"{prefix}/out")

    def tiny_xception(self, x: str) -> str:
        """TinyXception.forwardInput after normalisation: [N, 512, 7, 7]."""
        x = self.node("Relu", [self.conv(x, "entry_flow/conv_in", 2)], "entry_flow/relu")
        x = self.reduction_block(x, "entry_flow/reduction_block_0", activate_input=False)
        x = self.reduction_block(x, "entry_flow/reduction_block_1")
        for index in range(MAIN_BLOCKS):
            x = self.main_block(x, f"middle_flow/main_block_{index}")
        x = self.reduction_block(x, "exit_flow/reduction_block")
        x = self.separable(x, "exit_flow/separable_conv", 1)
        return self.node("Relu", [x], "exit_flow/relu")


def _input() -> list[helper.ValueInfoProto]:
    shape: list[str | int] = ["N", INPUT_SIZE, INPUT_SIZE, 3]
    return [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)]


def build_age_gender_onnx(manifest: list[dict[str, Any]], weight_files: dict[str, bytes]) -> bytes:
    """The serialized ONNX model of face-api's AgeGenderNet (`age_gender_model` manifest and
    shards, as processors.convert.faceapi_resnet.dequantize reads them)."""
    g = _TinyXceptionBuilder(dequantize(manifest, weight_files))
    pooled = g.pooled(g.tiny_xception(g.normalized_input()))
    age = g.fully_connected(pooled, "fc/age", "age_column")  # [N, 1]
    g.node("Reshape", [age, g.constant("flat", np.array([-1], np.int64))], "age")
    logits = g.fully_connected(pooled, "fc/gender", "gender_logits")
    g.node("Softmax", [logits], "gender", axis=-1)
    outputs = [
        helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("gender", TensorProto.FLOAT, ["N", len(GENDERS)]),
    ]
    return serialize(g, "faceapi_age_gender", _input(), outputs)


def build_expression_onnx(manifest: list[dict[str, Any]], weight_files: dict[str, bytes]) -> bytes:
    """The serialized ONNX model of face-api's FaceExpressionNet (`face_expression_model`)."""
    g = FaceApiBuilder(dequantize(manifest, weight_files))
    logits = g.fully_connected(g.pooled(g.dense_features(g.normalized_input())), "fc", "logits")
    g.node("Softmax", [logits], "expressions", axis=-1)
    outputs = [
        helper.make_tensor_value_info("expressions", TensorProto.FLOAT, ["N", len(EXPRESSIONS)])
    ]
    return serialize(g, "faceapi_expression", _input(), outputs)
