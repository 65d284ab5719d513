"""Where each opened model runs is known to the process (health shows it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from processors.registry import MODELS, SFACE, model_path
from processors.session import create_session, opened_models, providers
from streams.control.launch import REPO


def test_an_opened_model_is_listed_with_its_provider(models_dir: Path) -> None:
    path = model_path(SFACE.name, models_dir)
    session = create_session(path, threads=1)
    assert opened_models()[path.name] == session.get_providers()[0] == providers()[0]


def test_the_provider_check_covers_every_model_and_fails_elsewhere(models_dir: Path) -> None:
    """bench/providers.py, which infra/gpu_check.sh runs on a GPU machine."""
    script = [sys.executable, str(REPO / "bench" / "providers.py"), "--expect"]
    env = {**os.environ, "FACESTREAM_MODELS_DIR": str(models_dir)}
    here = subprocess.run([*script, providers()[0]], capture_output=True, text=True, env=env)
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout) == dict.fromkeys(MODELS, providers()[0])
    elsewhere = subprocess.run(
        [*script, "TensorrtExecutionProvider"], capture_output=True, text=True, env=env
    )
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.strip().startswith("not on TensorrtExecutionProvider: ")
