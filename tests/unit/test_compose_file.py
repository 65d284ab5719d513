"""docker-compose.kafka.yml against the code it runs: every facestream service's command goes
through the image's entrypoint mapping and the real `facestream` parser, and every variable names
a real settings field (with a value it accepts) or a container option. No Docker engine here:
the file is checked, not a running container."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from streams import cli
from streams.cli.container import OPTIONS, container_argv
from streams.settings import Settings

COMPOSE = Path(__file__).parents[2] / "docker-compose.kafka.yml"
PREFIX = "FACESTREAM_"
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
INFLUX2 = {"INFLUXDB_HOST": "influxdb2"}


def interpolate(value: Any, environ: dict[str, str]) -> str:
    """${NAME} and ${NAME:-default} as compose resolves them."""
    return VARIABLE.sub(lambda m: environ.get(m[1]) or m[2] or "", str(value))


def services(environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    for service in found.values():
        env = service.get("environment", {})
        service["environment"] = {k: interpolate(v, environ or {}) for k, v in env.items()}
    return found


def ours(environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The services that run the facestream image."""
    return {name: s for name, s in services(environ).items() if "build" in s}


def section_model(section: str) -> type[BaseModel]:
    field = Settings.model_fields.get(section)
    assert field is not None, f"no settings section {section!r}"
    model = field.annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def test_the_deployment_runs_workers_api_and_migrations() -> None:
    commands = {name: s["command"] for name, s in ours().items()}
    assert commands == {"migrate": ["db", "upgrade"], "worker": ["worker"], "api": ["api"]}


@pytest.mark.parametrize("environ", [{}, INFLUX2], ids=["influxdb1", "influxdb2"])
def test_every_variable_is_a_settings_field_with_a_value_it_takes(environ: dict[str, str]) -> None:
    for name, service in ours(environ).items():
        sections: dict[str, dict[str, str]] = {}
        for variable, value in service["environment"].items():
            if not variable.startswith(PREFIX):
                assert variable in OPTIONS, f"{name}: {variable} is neither a setting nor an option"
                continue
            section, _, key = variable.removeprefix(PREFIX).lower().partition("__")
            assert key in section_model(section).model_fields, f"{name}: {variable}"
            sections.setdefault(section, {})[key] = value
        for section, values in sections.items():
            section_model(section).model_validate(values)  # raises on a value it refuses


def test_each_command_parses_with_its_container_options() -> None:
    for name, service in ours().items():
        argv = container_argv(service["command"], service["environment"])
        args = cli.parser().parse_args(argv)  # SystemExit on anything the CLI refuses
        if name in ("worker", "api"):
            assert (args.workers, args.config_reload, args.pulling_time) == (1, True, 10.0), name


def test_the_api_scales_without_a_port_clash() -> None:
    """Each replica gets a host port of its own: a range, not one fixed port."""
    (port,) = services()["api"]["ports"]
    host_ports = port.split(":")[-2]
    low, high = (int(p) for p in host_ports.split("-"))
    assert high - low >= 1
    assert services()["api"]["environment"]["FACESTREAM_API__HOST"] == "0.0.0.0"


def test_the_influxdb2_profile_matches_the_monitoring_settings() -> None:
    server = services(INFLUX2)["influxdb2"]
    assert server["profiles"] == ["influxdb2"]
    init = server["environment"]
    for service in ours(INFLUX2).values():
        env = service["environment"]
        assert env["FACESTREAM_INFLUX_MONITORING__HOST"] == "influxdb2"
        assert env["FACESTREAM_INFLUX_MONITORING__ORGANIZATION"] == init["DOCKER_INFLUXDB_INIT_ORG"]
        assert env["FACESTREAM_INFLUX_MONITORING__BUCKET"] == init["DOCKER_INFLUXDB_INIT_BUCKET"]
        assert (
            env["FACESTREAM_INFLUX_MONITORING__TOKEN"] == init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
        )
    # and by default the 1.x server, which needs no profile
    assert "profiles" not in services()["influxdb"]
    assert {s["environment"]["FACESTREAM_INFLUX_MONITORING__HOST"] for s in ours().values()} == {
        "influxdb"
    }
