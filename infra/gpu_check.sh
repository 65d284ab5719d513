#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: installs the GPU runtime alone (onnxruntime-gpu, extra [gpu]),
# checks that every model runs on CUDA (bench/providers.py exits 1 otherwise), then runs the
# end-to-end benchmark there. Usage: bash infra/gpu_check.sh [e2e images per round, default 200]
LOG_PREFIX=gpu-check
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

FACESTREAM_GPU=1 bash infra/python.sh dev,models
.venv/bin/facestream models pull
.venv/bin/python bench/providers.py --expect CUDAExecutionProvider
bash infra/stack.sh start >/dev/null
eval "$(bash infra/stack.sh env)"
bash infra/testdata.sh >/dev/null
.venv/bin/python bench/e2e.py --images "${1:-200}" --rounds 1
