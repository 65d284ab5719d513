"""Where every model runs: opens each registered model (processors.registry.MODELS) from the
verified models folder, runs it once, and prints one JSON object, model -> execution provider.
Exits 1 when a model runs elsewhere than `--expect`. On a GPU machine `infra/gpu_check.sh`
runs it with the default, CUDAExecutionProvider.

    .venv/bin/python bench/providers.py --expect CPUExecutionProvider
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from processors import registry
from processors.session import create_session

SIZE_OF_FREE_AXIS = {0: 1, 2: 160, 3: 160}  # batch 1; a free height or width: 160 px (YuNet)


def run_once(name: str) -> str:
    """Runs model `name` once on zeros of its input's shape; the provider it ran on."""
    session = create_session(registry.model_path(name))
    model_input = session.get_inputs()[0]
    shape = [
        axis if isinstance(axis, int) else SIZE_OF_FREE_AXIS[i]
        for i, axis in enumerate(model_input.shape)
    ]
    session.run(None, {model_input.name: np.zeros(shape, np.float32)})
    provider: str = session.get_providers()[0]
    return provider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect", default="CUDAExecutionProvider")
    args = parser.parse_args()
    placed = {name: run_once(name) for name in registry.MODELS}
    print(json.dumps(placed))
    elsewhere = sorted(name for name, provider in placed.items() if provider != args.expect)
    if elsewhere:
        sys.exit(f"not on {args.expect}: {', '.join(elsewhere)}")


if __name__ == "__main__":
    main()
