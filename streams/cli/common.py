"""What the `facestream` command's modules share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

ARGV: list[str] = []  # this command's arguments, to start it again after a restart

Number = TypeVar("Number", int, float)


def number_in(low: float, high: float, kind: Callable[[str], Number]) -> Callable[[str], Number]:
    """An argument type: a `kind` number within [low..high]."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            wanted = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in [{low:g}..{high:g}]")
        return value

    return parse
