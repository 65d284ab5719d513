"""The client environment of the local stack (what `infra/stack.sh env` prints)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def stack_env() -> dict[str, str]:
    printed = subprocess.run(
        ["bash", str(REPO / "infra/stack.sh"), "env"], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.splitlines()
        if line.startswith("export ")
    )
