"""The codebase stays ruff- and mypy-clean (the project's own configuration in pyproject.toml)."""

from __future__ import annotations

import ast
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


# Lower first: a package imports only from packages before it (and itself). The top-level
# folders come first; inside `streams`, the roles, so that what a process runs reads from the tree.
LAYERS = [
    "schemas",
    "processors",
    "sinks",
    "streams.settings",
    "streams.models",
    "streams.kafka",
    "streams.control",
    "streams.worker",
    "streams.api",
    "streams.client",
    "streams.cli",
]


def layer_of(module: str) -> int | None:
    for index, name in reversed(list(enumerate(LAYERS))):
        if module == name or module.startswith(name + "."):
            return index
    return None


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def modules() -> dict[str, Path]:
    """Every module of the layered packages but the `streams` package itself."""
    found = {}
    for root in ("schemas", "processors", "sinks", "streams"):
        for path in (REPO / root).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name != "streams":
                found[name] = path
    return found


def test_every_module_has_a_layer() -> None:
    """A new sub-package of streams gets its place in LAYERS, or this fails."""
    assert [name for name in modules() if layer_of(name) is None] == []


def test_imports_only_run_down_the_layers() -> None:
    upward = [
        f"{name} imports {imported}"
        for name, path in sorted(modules().items())
        for imported in imports_of(path)
        if (layer_of(imported) or 0) > (layer_of(name) or 0)
    ]
    assert upward == []
