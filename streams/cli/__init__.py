"""The `facestream` command: its parser, assembled from one module per command group."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from streams.cli import admin, config, images, processes, reextract
from streams.cli.common import ARGV


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="facestream",
        description="Streaming face recognition: Kafka in, detection -> liveness -> descriptors "
        "-> matching, ClickHouse and InfluxDB out. Settings come from FACESTREAM_SECTION__KEY "
        "environment variables (e.g. FACESTREAM_KAFKA__BROKER=kafka://127.0.0.1:19092).",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The order here is the order `facestream --help` lists the commands in.
    for group in (admin, config, reextract, processes, images):
        group.add_commands(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = os.environ.get("FACESTREAM_LOGGING__LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ARGV[:] = sys.argv[1:] if argv is None else argv
    if args.command == "worker":
        # Faust's Worker parses sys.argv itself; give it only the program name.
        sys.argv = sys.argv[:1]
    code: int = args.run(args)
    return code
