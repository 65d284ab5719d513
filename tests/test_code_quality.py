"""The codebase stays ruff- and mypy-clean (the project's own configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["schemas", "processors", "streams", "sinks", "bench", "tests"]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff() -> None:
    lint = run(sys.executable, "-m", "ruff", "check", *PACKAGES)
    assert lint.returncode == 0, lint.stdout
    formatting = run(sys.executable, "-m", "ruff", "format", "--check", *PACKAGES)
    assert formatting.returncode == 0, formatting.stdout


def test_mypy() -> None:
    typed = run(sys.executable, "-m", "mypy", *PACKAGES)
    assert typed.returncode == 0, typed.stdout
