"""The served OpenAPI document is valid OpenAPI 3.1, shows an example for every operation and
declares what the server answers (here without Kafka; the live run is
tests/integration/test_schemathesis.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.testclient import TestClient

from streams.api.app import ROUTES
from streams.api.errors import HANDLERS
from streams.api.shapes import MAX_LANES
from streams.worker.replay import MAX_LANES as TASK_MAX_LANES

ACCOUNT = {"Luna-Account-Id": str(uuid.uuid4())}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(Starlette(routes=ROUTES, exception_handlers=HANDLERS))


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/v1/openapi.yml")
    assert response.status_code == 200
    loaded: dict[str, Any] = yaml.safe_load(response.text)
    return loaded


def test_the_served_document_is_valid_openapi(client: TestClient, spec: dict[str, Any]) -> None:
    validate(spec)
    assert client.get("/v1/openapi.json").json() == spec
    assert "<code>/v1/images</code>" in client.get("/v1/docs").text


def test_every_operation_has_an_example(spec: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if not any(
            "example" in media
            for answer in operation["responses"].values()
            for media in answer.get("content", {}).values()
        )
    ]
    assert missing == []


def test_every_operation_declares_its_errors(spec: dict[str, Any]) -> None:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "500" in statuses, (method, path)
            if any(p["name"] == "Luna-Account-Id" for p in operation.get("parameters", [])):
                assert "400" in statuses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= statuses, (method, path)
            if "{" in path:
                assert "404" in statuses or "task_id" in path, (method, path)
            if operation.get("security") == [{"AdminToken": []}]:
                assert {"401", "403"} <= statuses, (method, path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/lists", {"GET", "HEAD", "POST"}),
        ("POST", "/v1/faces/f", {"GET", "HEAD", "DELETE"}),
        ("GET", "/v1/images", {"POST"}),
    ],
)
def test_a_method_a_path_does_not_take_is_a_405_with_allow(
    client: TestClient, method: str, path: str, allow: set[str]
) -> None:
    response = client.request(method, path, headers=ACCOUNT)
    assert (response.status_code, response.json()["error_code"]) == (405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == allow


def test_the_lanes_bound_is_the_tasks_own() -> None:
    assert MAX_LANES == TASK_MAX_LANES
