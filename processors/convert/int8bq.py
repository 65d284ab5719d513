"""Fold int8 block-quantized weights into fp32 initializers so onnxruntime can run the graph.

The OpenCV Zoo `*_int8bq.onnx` files store each weight as int8 + per-block scales, expanded at run
time by an opset-21 DequantizeLinear with a `block_size` attribute (then a Reshape to the weight's
shape). onnxruntime rejects that attribute. The weights are constants, so dequantizing them once
here gives a plain fp32 graph, computed as OpenCV does: (q - zero_point) * scale in float32.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

FloatArray = npt.NDArray[np.float32]


def fold_block_quantized(model_bytes: bytes) -> bytes:
    """Return the model with every constant DequantizeLinear (and the Reshape after it) folded."""
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    folded: dict[str, FloatArray] = {}
    kept: list[onnx.NodeProto] = []
    for node in graph.node:  # nodes are in topological order: a Reshape follows its producer
        if node.op_type == "DequantizeLinear" and all(i in constants for i in node.input if i):
            value = _dequantize(node, constants)
        elif node.op_type == "Reshape" and node.input[0] in folded and node.input[1] in constants:
            value = _reshape(node, folded[node.input[0]], constants[node.input[1]])
        else:
            kept.append(node)
            continue
        constants[node.output[0]] = folded[node.output[0]] = value

    leftover = [
        n.name for n in kept if n.op_type == "DequantizeLinear" and _attrs(n).get("block_size")
    ]
    if leftover:
        raise ValueError(f"block-quantized DequantizeLinear with non-constant input: {leftover}")

    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    initializers = [t for t in graph.initializer if t.name in used]
    initializers += [numpy_helper.from_array(v, name) for name, v in folded.items() if name in used]
    # Old exporters also list weights as graph inputs: onnxruntime then treats them as overridable
    # and skips constant folding (BatchNorm into Conv), and the stale names of the quantized ones
    # would be inputs to feed. Keep only the real inputs.
    weights = {t.name for t in initializers}
    inputs = [i for i in graph.input if i.name in used and i.name not in weights]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.input[:]
    graph.input.extend(inputs)
    serialized: bytes = model.SerializeToString()  # protobuf's stubs say Any
    return serialized


def _attrs(node: onnx.NodeProto) -> dict[str, int]:
    return {a.name: a.i for a in node.attribute if a.type == onnx.AttributeProto.INT}


def _dequantize(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> FloatArray:
    attrs = _attrs(node)
    quantized = constants[node.input[0]]
    axis = attrs.get("axis", 1) % max(quantized.ndim, 1)
    block = attrs.get("block_size", 0)
    scale = _expand(constants[node.input[1]].astype(np.float32), quantized.shape, axis, block)
    has_zero = len(node.input) > 2 and node.input[2]
    zero = constants[node.input[2]] if has_zero else np.zeros((), quantized.dtype)
    zero_point = _expand(zero.astype(np.float32), quantized.shape, axis, block)
    # The difference of two int8 values is exact in float32; only the product rounds, as in OpenCV.
    result: FloatArray = (quantized.astype(np.float32) - zero_point) * scale
    return result


def _expand(param: FloatArray, shape: tuple[int, ...], axis: int, block: int) -> FloatArray:
    """Broadcast a per-tensor, per-axis or per-block parameter to the quantized tensor's shape."""
    if param.size == 1 and block == 0:
        return param.reshape(())
    if block == 0:
        return param.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    repeated = np.repeat(param, block, axis=axis)
    return np.take(repeated, np.arange(shape[axis]), axis=axis)


def _reshape(node: onnx.NodeProto, data: FloatArray, shape: np.ndarray) -> FloatArray:
    allow_zero = _attrs(node).get("allowzero", 0)
    # ONNX Reshape: a 0 copies the input's dimension (unless allowzero), -1 is inferred.
    dims = [data.shape[i] if d == 0 and not allow_zero else int(d) for i, d in enumerate(shape)]
    return data.reshape(dims)
