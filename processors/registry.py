"""The versioned model registry: which ONNX file each model is, and checking it before use.

`facestream models pull` (streams.models.pull) writes the files and a `manifest.json` with the
sha256 of each; a worker opens a model only through `model_path`, so a missing, stale or tampered
file stops it at start-up with a message saying what to do, not mid-stream with a shape error.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MODELS_DIR_ENV = "FACESTREAM_MODELS_DIR"
_PULL_HINT = "run `facestream models pull`"


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    filename: str  # in the models folder
    # Bumped when the conversion changes what the code expects of the file; the manifest records
    # the revision pulled, so an older file is rebuilt by a pull and refused by model_path.
    revision: int = 1


# Revision 2: input height and width free (processors.convert.yunet).
YUNET = Model("yunet", "yunet_2023mar.onnx", revision=2)
SFACE = Model("sface", "sface_2021dec.onnx")
DLIB_RESNET = Model("dlib_resnet", "dlib_resnet_v1.onnx")
# face-api's FaceLandmark68Net (processors.convert.faceapi_landmarks68), for head pose.
LANDMARKS68 = Model("landmarks68", "faceapi_landmark68.onnx")
# face-api's AgeGenderNet and FaceExpressionNet (processors.convert.faceapi_attributes).
AGE_GENDER = Model("age_gender", "faceapi_age_gender.onnx")
EXPRESSION = Model("expression", "faceapi_expression.onnx")
MINIFASNET_V2 = Model("minifasnet_v2", "minifasnet_v2_2.7_80x80.onnx")
MINIFASNET_V1SE = Model("minifasnet_v1se", "minifasnet_v1se_4.0_80x80.onnx")

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        YUNET,
        SFACE,
        DLIB_RESNET,
        LANDMARKS68,
        AGE_GENDER,
        EXPRESSION,
        MINIFASNET_V2,
        MINIFASNET_V1SE,
    )
}

# A stored descriptor keeps its version forever: descriptors of different versions never compare.
DESCRIPTOR_VERSIONS: dict[int, str] = {1: SFACE.name, 2: DLIB_RESNET.name}


def default_models_dir() -> Path:
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "facestream" / "models"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(models_dir: Path) -> dict[str, dict[str, Any]]:
    """The `models` table of the folder's manifest: model name -> {file, sha256, source}."""
    path = models_dir / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no model manifest at {path}: {_PULL_HINT}")
    try:
        models: dict[str, dict[str, Any]] = json.loads(path.read_text())["models"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable model manifest {path} ({exc}): {_PULL_HINT}") from exc
    return models


def write_manifest(models_dir: Path, models: dict[str, dict[str, Any]]) -> None:
    path = models_dir / MANIFEST_NAME
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps({"models": models}, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)  # a worker starting meanwhile reads the old or the new, never half


def model_path(name: str, models_dir: Path | None = None) -> Path:
    """The verified path of model `name`; raises if it is unknown, missing or not as pulled."""
    model = MODELS.get(name)
    if model is None:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    folder = models_dir or default_models_dir()
    path = folder / model.filename
    entry = read_manifest(folder).get(name)
    if entry is None or not path.is_file():
        raise FileNotFoundError(f"model {name} is not in {folder}: {_PULL_HINT}")
    if entry.get("file") != model.filename or entry.get("sha256") != file_sha256(path):
        raise ValueError(
            f"model {name} at {path} does not match {folder / MANIFEST_NAME} "
            f"(changed or corrupt): {_PULL_HINT} --force"
        )
    if entry.get("revision", 1) != model.revision:
        raise ValueError(
            f"model {name} at {path} is conversion revision {entry.get('revision', 1)}, "
            f"this code needs {model.revision}: {_PULL_HINT}"
        )
    return path
