"""State shared by the `facestream` command's modules."""

from __future__ import annotations

ARGV: list[str] = []  # this command's arguments, to start it again after a restart
