"""A private copy of one of the stack's servers, started by the project's own infra script with
its own state folder and ports: what a fault test kills, stops or freezes, so the servers every
other test shares stay up."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from streams.control.launch import REPO, free_port

SHARED_STATE = Path(os.environ.get("FACESTREAM_STATE", REPO / ".facestream"))

# The variables each script reads its ports from (infra/lib.sh).
PORT_VARIABLES = {
    "kafka": ("FACESTREAM_KAFKA_PORT", "FACESTREAM_KAFKA_CONTROLLER_PORT"),
    "clickhouse": ("FACESTREAM_CLICKHOUSE_TCP_PORT", "FACESTREAM_CLICKHOUSE_HTTP_PORT"),
    "influxdb": ("FACESTREAM_INFLUXDB_PORT", "FACESTREAM_INFLUXDB_RPC_PORT"),
}


class PrivateServer:
    """`infra/<name>.sh` under a state folder of its own; `port` is the one clients use."""

    def __init__(self, name: str, state: Path) -> None:
        self.name = name
        self.state = state
        self.env = {
            **os.environ,
            "FACESTREAM_STATE": str(state),
            **{variable: str(free_port()) for variable in PORT_VARIABLES[name]},
        }
        if name == "kafka":  # the shared broker's jars, not a second download
            self.env["FACESTREAM_KAFKA_LIBS"] = str(SHARED_STATE / "kafka" / "libs")
        self.port = int(self.env[PORT_VARIABLES[name][0]])

    def _script(self, command: str) -> None:
        subprocess.run(
            ["bash", str(REPO / "infra" / f"{self.name}.sh"), command],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    @property
    def pid(self) -> int:
        return int((self.state / self.name / f"{self.name}.pid").read_text().strip())

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        """A clean stop (SIGTERM, then SIGKILL after the script's grace period)."""
        self._script("stop")

    def kill(self) -> None:
        """kill -9, as a machine losing power would; waits until the process is gone."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            if Path(f"/proc/{pid}/status").read_text().count("State:\tZ"):
                return  # a zombie holds no port
            time.sleep(0.05)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung server)."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
