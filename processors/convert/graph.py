"""What the hand-built ONNX converters share: node/initializer bookkeeping and the model's ending.

Each converter subclasses GraphBuilder with its network's layers, then passes it to `serialize`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the oldest onnxruntime the project allows (1.18) reads it


class GraphBuilder:
    """Appends nodes and initializers, in the order the graph will list them."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: npt.NDArray[np.generic]) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def serialize(
    builder: GraphBuilder,
    name: str,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> bytes:
    """The builder's graph as a serialized model, checked in full (shapes included) first."""
    graph = helper.make_graph(builder.nodes, name, inputs, outputs, builder.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facestream",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    serialized: bytes = model.SerializeToString()  # protobuf's stubs say Any
    return serialized
