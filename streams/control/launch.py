"""facestream commands run as child processes beside the local stack, the way a user starts
them: what the integration tests and the benchmarks start, wait for and stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
WORKER_READY = "gallery loaded"  # the worker's last start-up line


def stack_env(start: bool = False) -> dict[str, str]:
    """The local stack's client variables (what `infra/stack.sh env` prints); `start` starts
    the stack first (a no-op for servers already running)."""
    script = str(REPO / "infra/stack.sh")
    if start:
        subprocess.run(["bash", script, "start"], check=True, stdout=subprocess.DEVNULL)
    printed = subprocess.run(
        ["bash", script, "env"], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.splitlines()
        if line.startswith("export ")
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CommandProcess:
    """`facestream <command>` with its output in a log file."""

    what = "command"

    def __init__(self, env: dict[str, str], log: Path, *command: str) -> None:
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *command],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def is_ready(self) -> bool:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.what} exited {self.process.returncode}:\n{self.tail()}")
            if self.is_ready():
                return
            time.sleep(0.3)
        raise TimeoutError(f"{self.what} not ready in {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._file.close()


def upgrade_schema(env: dict[str, str]) -> None:
    """`facestream db upgrade` for the deployment `env` names, as its operator runs it before
    starting workers (they refuse an older schema); embedded chDB upgrades itself."""
    full = {**os.environ, **env}
    if not full.get("FACESTREAM_STORAGE__CLICKHOUSE_URL"):
        return
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "db", "upgrade"],
        env=full,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"db upgrade exited {done.returncode}:\n{done.stdout}{done.stderr}")


class WorkerProcess(CommandProcess):
    """`facestream worker`; ready once its log shows `ready` (by default: all stages up).
    The schema is upgraded first unless `upgrade` is false."""

    what = "worker"

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        *args: str,
        ready: str = WORKER_READY,
        upgrade: bool = True,
    ) -> None:
        if upgrade:
            upgrade_schema(env)
        super().__init__(env, log, "worker", *args)
        self.ready = ready

    def is_ready(self) -> bool:
        return self.ready in self.log.read_text(errors="replace")


class ApiProcess(CommandProcess):
    """`facestream api` on a free port; ready when /v1/health answers (after the directory of
    faces and lists is loaded)."""

    what = "API"

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        super().__init__(env, log, "api", "--port", str(self.port), *args)

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.origin}/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
