"""The two clients list the operations twice (so that mypy types each client's methods, overloads
included): both must name every Endpoints builder, each under its own name."""

from __future__ import annotations

import inspect

import pytest

from streams.client.http import AsyncClient, Client, Endpoints

BUILDERS = {
    name: build
    for name, build in inspect.getmembers(Endpoints, inspect.isfunction)
    if not name.startswith("_")
}


@pytest.mark.parametrize("client", [Client, AsyncClient])
def test_each_client_sends_every_endpoint_under_its_name(client: type) -> None:
    offered = {
        name: method.__wrapped__
        for name, method in vars(client).items()
        if hasattr(method, "__wrapped__")
    }
    assert offered == BUILDERS
