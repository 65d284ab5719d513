"""bench/matcher.py runs end to end on a tiny gallery and prints every figure it promises; a
smoke test, no timing asserted. The cold start (Kafka and a worker) is
tests/integration/test_bench_matcher_cold.py."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from streams.control.launch import REPO

SIDES = {"facestream", "faiss_selector", "faiss_list_index"}
MODES = {"single", "batch4", "batch16"}
RATIOS = {"single_vs_faiss_selector", "single_vs_faiss_list_index"} | {
    f"batch{size}_vs_{side}_{kind}"
    for size in (4, 16)
    for side in ("faiss_selector", "faiss_list_index")
    for kind in ("single", "batched")
}


def run_bench(*args: str) -> dict[str, Any]:
    """The JSON object the bench prints last."""
    done = subprocess.run(
        [sys.executable, "bench/matcher.py", "--rounds", "1", "--queries", "2", *args],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_every_figure_of_a_tiny_gallery() -> None:
    faces = 2000
    result = run_bench(
        "--faces", str(faces), "--batches", "4,16", "--enrolls", "3", "--cold-faces", "0"
    )

    assert result["faces"] == faces
    assert result["threads"] == {"requested": 1, "numpy_openblas": 1, "faiss_openmp": 1}
    assert set(result["lists"]) == {"100%", "10%", "0.1%"}
    assert [r["members"] for r in result["lists"].values()] == [2000, 200, 2]
    for figures in result["lists"].values():
        assert (
            set(figures) == {"members", "ms_per_query", "cores_used", "topk_equal_faiss"} | RATIOS
        )
        assert set(figures["ms_per_query"]) == SIDES
        assert all(set(ms) == MODES for ms in figures["ms_per_query"].values())
        assert all(v > 0 for ms in figures["ms_per_query"].values() for v in ms.values())
        assert all(figures[ratio] > 0 for ratio in RATIOS)
        # An exact search: the same top 5 as FAISS for every query (2 single + 4 + 16).
        assert figures["topk_equal_faiss"] == "22/22"
    for worst in (
        "worst_single_vs_faiss_selector",
        "worst_batched_vs_faiss_selector_single",
        "worst_batched_vs_faiss_selector_batched",
    ):
        assert result[worst] > 0
    assert result["memory"]["raw_fp32_bytes"] == faces * 128 * 4
    assert result["memory"]["ratio"] > 0
    assert result["applied_faces_per_s"] > 0
    assert set(result["enrollment"]) == {
        "apply_ms",
        "apply_ms_max",
        "versions_lacking_ms",
        "first_search_10%_list_ms",
    }
    assert result["cold_start"] is None
