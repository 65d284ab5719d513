"""onnxruntime sessions: the CUDA provider when the machine has one, the CPU otherwise."""

from __future__ import annotations

import logging
import os
from pathlib import Path

try:
    import onnxruntime as ort
except ImportError as missing:  # the runtime is an extra, so that only one of the two is there
    raise ImportError(
        "facestream needs a model runtime: install facestream[cpu], or facestream[gpu] "
        "(onnxruntime-gpu, alone) on a machine with CUDA"
    ) from missing

log = logging.getLogger(__name__)

# The provider each model opened in this process runs on (file name -> provider), for health.
_OPENED: dict[str, str] = {}


def providers() -> list[str]:
    available = ort.get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available]


def create_session(model_path: Path | str, *, threads: int | None = None) -> ort.InferenceSession:
    """Open one model. `threads` bounds intra-op threads (env FACESTREAM_ORT_THREADS otherwise)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    wanted = threads or int(os.environ.get("FACESTREAM_ORT_THREADS", "0"))
    if wanted:
        options.intra_op_num_threads = wanted
    # A worker holds five sessions; idle ones spinning on the cores starve the busy one
    # (measured: 2x slower on 2 cores with spinning on).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers())
    # A provider that fails to start (no CUDA driver) falls back: say where the model really runs.
    provider = session.get_providers()[0]
    name = Path(model_path).name
    if _OPENED.get(name) != provider:
        log.info("model %s runs on %s", name, provider)
    _OPENED[name] = provider
    return session


def opened_models() -> dict[str, str]:
    """The execution provider of each model file this process has opened, by file name."""
    return dict(_OPENED)
