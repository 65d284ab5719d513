"""The container image's entrypoint (`python -m streams.cli.container`): the `facestream`
command, with the options LUNA's containers take as variables mapped onto its own options.

    WORKER_COUNT=N             --workers N        (worker, api)
    RELOAD_CONFIG=1            --config-reload    (worker, api; 0/1, true/false, yes/no, on/off)
    RELOAD_CONFIG_INTERVAL=S   --pulling-time S   (worker, api)

They go in right after the command name, so options written on the command line come later and
win. Each value is checked as its option checks it; a bad one ends the container at once with
the variable's name, its value and why (exit 2, as argparse refuses an option), rather than
being ignored. Empty values count as unset (compose writes `${X:-}` as empty).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from streams.cli.processes import pulling_time, worker_count

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}
COMMANDS = {"worker", "api"}  # the commands that take these options


class ContainerOptionError(ValueError):
    pass


def _reload(text: str) -> list[str]:
    if text.lower() in TRUE:
        return ["--config-reload"]
    if text.lower() in FALSE:
        return []
    raise argparse.ArgumentTypeError(f"{text!r} is not one of 0/1, true/false, yes/no, on/off")


def _option(name: str, check: Callable[[str], object]) -> Callable[[str], list[str]]:
    return lambda text: [name, str(check(text))]


OPTIONS: dict[str, Callable[[str], list[str]]] = {
    "WORKER_COUNT": _option("--workers", worker_count),
    "RELOAD_CONFIG": _reload,
    "RELOAD_CONFIG_INTERVAL": _option("--pulling-time", pulling_time),
}


def container_argv(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """`argv` with the options the variables set; ContainerOptionError for a bad value."""
    added: list[str] = []
    for variable, option in OPTIONS.items():
        text = environ.get(variable, "").strip()
        if not text:
            continue
        try:
            added += option(text)
        except argparse.ArgumentTypeError as error:
            raise ContainerOptionError(f"{variable}={text!r} is refused: {error}") from None
    if not argv or argv[0] not in COMMANDS:
        return list(argv)  # checked all the same: a bad value is a broken deployment
    return [argv[0], *added, *argv[1:]]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    from streams.cli import main as facestream

    try:
        args = container_argv(sys.argv[1:] if argv is None else argv, environ or os.environ)
    except ContainerOptionError as error:
        print(f"facestream: {error}", file=sys.stderr)
        return 2
    return facestream(args)


if __name__ == "__main__":
    sys.exit(main())
