"""The image's entrypoint maps WORKER_COUNT, RELOAD_CONFIG and RELOAD_CONFIG_INTERVAL onto the
`facestream` options, and refuses a bad value with the reason and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams import cli
from streams.cli.container import ContainerOptionError, container_argv


def parsed(argv: list[str], **environ: str) -> tuple[int, bool, float | None]:
    args = cli.parser().parse_args(container_argv(argv, environ))
    return args.workers, args.config_reload, args.pulling_time


def test_the_variables_become_options() -> None:
    env = {"WORKER_COUNT": "3", "RELOAD_CONFIG": "1", "RELOAD_CONFIG_INTERVAL": "2.5"}
    assert parsed(["worker"], **env) == (3, True, 2.5)
    assert parsed(["api"], **env) == (3, True, 2.5)
    assert parsed(["api"], RELOAD_CONFIG="off", WORKER_COUNT="") == (1, False, None)


def test_the_command_line_wins() -> None:
    assert parsed(["worker", "--workers", "2"], WORKER_COUNT="5")[0] == 2


def test_other_commands_are_left_alone() -> None:
    assert container_argv(["db", "upgrade"], {"WORKER_COUNT": "2"}) == ["db", "upgrade"]


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("WORKER_COUNT", "0", "greater than or equal to 1"),
        ("WORKER_COUNT", "-1", "greater than or equal to 1"),
        ("WORKER_COUNT", "abc", "valid integer"),
        ("WORKER_COUNT", "65", "less than or equal to 64"),
        ("RELOAD_CONFIG", "maybe", "not one of 0/1"),
        ("RELOAD_CONFIG_INTERVAL", "-5", "not in [0..3600]"),
        ("RELOAD_CONFIG_INTERVAL", "soon", "not a number"),
    ],
)
def test_a_bad_value_is_refused_with_the_reason(variable: str, value: str, why: str) -> None:
    with pytest.raises(ContainerOptionError) as refused:
        container_argv(["worker"], {variable: value})
    assert str(refused.value).startswith(f"{variable}={value!r} is refused: ")
    assert why in str(refused.value)


def entrypoint(*argv: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """As the image runs it: `python -m streams.cli.container ARGV`."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORKER_COUNT", "RELOAD_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli.container", *argv],
        env=env | environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_the_entrypoint_exits_non_zero_on_a_bad_worker_count(value: str) -> None:
    done = entrypoint("worker", WORKER_COUNT=value)
    assert done.returncode == 2
    assert f"WORKER_COUNT={value!r} is refused" in done.stderr


def test_the_entrypoint_hands_good_values_to_the_command() -> None:
    done = entrypoint("api", "--help", WORKER_COUNT="4", RELOAD_CONFIG="true")
    assert done.returncode == 0, done.stderr
    assert "--workers N" in done.stdout


@pytest.mark.parametrize("value", ["0", "-2"])
def test_the_api_refuses_no_or_negative_workers(value: str) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.parser().parse_args(["api", "--workers", value])
    assert refused.value.code == 2
