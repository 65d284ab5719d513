"""Shared fixtures: the real models and the real test images, fetched once per test session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from processors.detector import YuNetDetector
from processors.registry import YUNET, default_models_dir, model_path
from streams.models.pull import pull

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Every model, pulled and verified into $FACESTREAM_MODELS_DIR (or the user cache)."""
    folder = default_models_dir()
    pull(folder, progress=False)  # a fresh machine fetches here; a failure fails the tests
    return folder


@pytest.fixture(scope="session")
def testdata_dir() -> Path:
    """dlib's johns/ and faces/ and astronaut.png, from infra/testdata.sh (it prints the folder)."""
    script = REPO / "infra" / "testdata.sh"
    done = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(done.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def detector(models_dir: Path) -> YuNetDetector:
    """YuNet as the worker runs it, loaded once for every test that detects faces."""
    return YuNetDetector(model_path(YUNET.name, models_dir))
