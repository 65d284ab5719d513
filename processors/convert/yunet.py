"""YuNet for onnxruntime at any input size: the int8bq file folded, its height and width freed.

cv2.FaceDetectorYN runs the network at the image's own size padded to a multiple of 32, and that
is what SFace's reference landmarks are (see processors.detector). The published graph says
1x3x640x640, but it is fully convolutional and its Reshapes take their sizes from the tensors,
so freeing the two dimensions is all onnxruntime needs. The outputs' cell counts (which
depend on the size) are freed too and the stale intermediate shapes dropped, or onnxruntime
checks every run against the 640x640 ones and logs a warning per output; the shapes stay
otherwise, as cv2.dnn needs them to read the file.
"""

from __future__ import annotations

import onnx

from processors.convert.int8bq import fold_block_quantized


def build_onnx(int8bq: bytes) -> bytes:
    """The onnxruntime-ready YuNet: input [1, 3, height, width], height and width free."""
    model = onnx.load_from_string(fold_block_quantized(int8bq))
    graph = model.graph
    (image,) = graph.input
    dims = image.type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise ValueError(f"unexpected YuNet input {image.name}: {dims}")
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.output:  # [1, cells, channels]
        output.type.tensor_type.shape.dim[1].dim_param = f"{output.name}_cells"
    del graph.value_info[:]
    serialized: bytes = model.SerializeToString()  # protobuf's stubs say Any
    return serialized
