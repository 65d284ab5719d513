#!/usr/bin/env python3
"""Readiness probe for a Kafka broker, standard library only.

Sends one Metadata request (v4, no topics) and succeeds when the broker answers with at least one
live broker and a known controller: that means the listener is open, the broker is registered and
unfenced, and clients can bootstrap. Used by infra/kafka.sh; no project venv needed.

usage: kafka_probe.py HOST:PORT [--timeout SECONDS]
exit 0 ready (prints "brokers=N controller=ID cluster=ID"), 1 not ready.
"""

from __future__ import annotations

import socket
import struct
import sys

API_METADATA = 3
VERSION = 4  # non-flexible; supported by Kafka 1.0 through 4.x


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def string(self) -> str | None:
        (n,) = self.unpack(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def probe(host: str, port: int, timeout: float) -> str:
    client_id = b"facestream-probe"
    body = struct.pack(">hhih", API_METADATA, VERSION, 1, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # topics: empty array -> brokers only
    body += struct.pack(">b", 0)  # allow_auto_topic_creation = false
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        r = _Reader(_read_exact(sock, size))
    (correlation_id, _throttle) = r.unpack(">ii")
    if correlation_id != 1:
        raise ValueError(f"unexpected correlation id {correlation_id}")
    (n_brokers,) = r.unpack(">i")
    for _ in range(n_brokers):
        r.unpack(">i")  # node_id
        r.string()  # host
        r.unpack(">i")  # port
        r.string()  # rack
    cluster_id = r.string()
    (controller_id,) = r.unpack(">i")
    if n_brokers < 1 or controller_id < 0:
        raise ValueError(f"not ready: brokers={n_brokers} controller={controller_id}")
    return f"brokers={n_brokers} controller={controller_id} cluster={cluster_id}"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    host, _, port = argv[0].rpartition(":")
    timeout = float(argv[argv.index("--timeout") + 1]) if "--timeout" in argv else 2.0
    try:
        print(probe(host or "127.0.0.1", int(port), timeout))
    except (OSError, ValueError, struct.error) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
