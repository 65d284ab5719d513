"""Hostile requests against the whole app (every route, no Kafka): each one that used to be a 500
is a 400 with its code; a real 500 says only an error id, which the log line carries; the
administrator's routes refuse a missing or wrong token."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import schemas
from processors.session import opened_models, providers
from sinks.clickhouse import checked
from sinks.types import Params
from streams.api.app import ROUTES
from streams.api.errors import HANDLERS
from streams.kafka import topics
from streams.kafka.directory import Directory
from streams.models.modelset import ModelSet
from streams.settings import ApiSettings, Settings

ACCOUNT = {"Luna-Account-Id": str(uuid.uuid4())}
TOKEN = "t" * 32
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "SELECT secret FROM db.events /var/lib/clickhouse/store"


class FakeServices:
    """What the handlers use of streams.api.services.Services; records are encoded as the real
    producer encodes them and SQL as the ClickHouse driver sends it, so input that would break
    those breaks here too."""

    def __init__(self, settings: Settings, models: ModelSet | None = None) -> None:
        self.settings = settings
        self.models = models
        self.directory = Directory()
        self.tasks: dict[str, Any] = {}
        self.offset = 0
        self.failure: Exception | None = None

    async def publish(self, spec: topics.TopicSpec, key: str, record: Any) -> int:
        key.encode()
        if record is not None:
            schemas.codec(spec.schema).encode(record)
        self.offset += 1
        return self.offset

    async def save_face(self, face_id: str, face: Any) -> None:
        self.directory.apply_face(face_id, face, await self.publish(topics.FACES, face_id, face))

    async def save_list(self, list_id: str, record: Any) -> None:
        self.directory.apply_list(
            list_id, record, await self.publish(topics.LISTS, list_id, record)
        )

    async def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        checked(params)  # what both clients check first: no lone surrogate gets this far
        if self.failure is not None:
            raise self.failure
        return []


@pytest.fixture(scope="module")
def models(models_dir: Path) -> ModelSet:
    return ModelSet(models_dir)


def make_client(services: FakeServices) -> TestClient:
    app = Starlette(routes=ROUTES, exception_handlers=HANDLERS)
    app.state.services = services
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def services(models: ModelSet) -> FakeServices:
    """With one face, `f`, of ACCOUNT."""
    services = FakeServices(Settings(api=ApiSettings(admin_token=TOKEN)), models)
    face: Any = {  # partial on purpose: no created_at
        "face_id": "f",
        "account_id": ACCOUNT["Luna-Account-Id"],
        "list_ids": [],
        "user_data": None,
        "event_id": None,
        "sample_id": None,
        "created_at": None,
        "descriptors": [{"version": 1, "vector": np.ones(128, "<f4").tobytes()}],
    }
    services.directory.apply_face("f", face, 0)
    return services


@pytest.fixture
def client(services: FakeServices) -> TestClient:
    return make_client(services)


def refused(response: Any, status: int, code: str) -> None:
    assert (response.status_code, response.json()["error_code"]) == (status, code), response.text


def post_json(client: TestClient, path: str, text: str) -> Any:
    headers = {**ACCOUNT, "content-type": "application/json"}
    return client.post(path, content=text.encode(), headers=headers)


def test_deeply_nested_json_is_a_400(client: TestClient) -> None:
    refused(post_json(client, "/v1/lists", "[" * 100_000), 400, "bad_json")
    nested = '{"user_data": ' + "[" * 40 + "]" * 40 + "}"  # valid JSON, deeper than any body
    refused(post_json(client, "/v1/lists", nested), 400, "bad_json")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/lists", '{"user_data": "\\ud800"}'),
        ("/v1/faces", '{"event_id": "\\ud800"}'),
        ("/v1/faces", '{"event_id": "e", "\\udfff": 1}'),
        (
            "/v1/matcher/faces",
            '{"references": [{"type": "event", "id": "\\ud800"}], '
            '"candidates": {"face_ids": ["f"]}}',
        ),
    ],
)
def test_a_lone_surrogate_is_a_400(client: TestClient, path: str, body: str) -> None:
    refused(post_json(client, path, body), 400, "bad_json")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"references": [{"type": "face", "id": "f"}], "candidates": {"list_ids": 5}}',
         "bad_candidates"),
        ('{"references": [{"type": "face", "id": "f"}], "candidates": {"face_ids": true}}',
         "bad_candidates"),
        ('{"references": [{"type": "event", "id": "e", "face_index": true}], "candidates": '
         '{"face_ids": ["f"]}}', "bad_reference"),
        ('{"references": [{"type": "event", "id": "e", "face_index": 70000}], "candidates": '
         '{"face_ids": ["f"]}}', "bad_reference"),
        ('{"references": [{"type": "face", "id": 5}], "candidates": {"face_ids": ["f"]}}',
         "bad_reference"),
        ('{"references": [{"type": "face", "id": "f"}], "candidates": {"face_ids": ["f"]}, '
         '"limit": true}', "bad_limit"),
        ('{"references": [{"type": "face", "id": "f"}], "candidates": {"face_ids": ["f"]}, '
         '"threshold": false}', "bad_threshold"),
    ],
)  # fmt: skip
def test_wrong_types_in_a_match_are_400s(client: TestClient, body: str, code: str) -> None:
    refused(post_json(client, "/v1/matcher/faces", body), 400, code)


@pytest.mark.parametrize("index", ["true", "false", "-1", "65536", "1.0", '"0"'])
def test_a_face_index_that_is_no_uint16_is_a_400(client: TestClient, index: str) -> None:
    body = f'{{"event_id": "{uuid.uuid4()}", "face_index": {index}}}'
    refused(post_json(client, "/v1/faces", body), 400, "bad_face_source")


@pytest.mark.parametrize("version", ["true", "1.0", '"1"'])
def test_a_task_version_must_be_an_integer(client: TestClient, version: str) -> None:
    response = client.post(
        "/v1/tasks/reextract",
        content=f'{{"version": {version}}}',
        headers={**ADMIN, "content-type": "application/json"},
    )
    refused(response, 400, "bad_version")


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"],
)
def test_times_out_of_range_are_400s(client: TestClient, moment: str) -> None:
    for name in ("created_from", "created_to"):
        response = client.get("/v1/events", params={name: moment}, headers=ACCOUNT)
        refused(response, 400, "bad_parameter")


@pytest.mark.parametrize("suffix", ["", "/stop", "/log"])
def test_a_task_id_with_cr_lf_is_a_400(client: TestClient, suffix: str) -> None:
    method = "POST" if suffix == "/stop" else "GET"
    response = client.request(method, f"/v1/tasks/a%0d%0aSet-Cookie:%20x=1{suffix}", headers=ADMIN)
    refused(response, 400, "bad_task_id")
    assert "set-cookie" not in response.headers


def test_an_image_with_an_extreme_aspect_ratio_is_a_400(client: TestClient) -> None:
    for shape in ((1, 1500, 3), (1500, 1, 3), (2, 5000, 3)):
        ok, data = cv2.imencode(".png", np.full(shape, 128, np.uint8))
        assert ok
        headers = {**ACCOUNT, "content-type": "image/png"}
        response = client.post("/v1/faces", content=data.tobytes(), headers=headers)
        refused(response, 400, "no_face")


def test_an_internal_error_shows_only_its_id_which_the_log_carries(
    client: TestClient, services: FakeServices, caplog: pytest.LogCaptureFixture
) -> None:
    services.failure = RuntimeError(SECRET)
    with caplog.at_level(logging.ERROR, logger="streams.api.errors"):
        response = client.get(f"/v1/events/{uuid.uuid4()}", headers=ACCOUNT)
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"error_code", "desc"} and body["error_code"] == "internal_error"
    assert "secret" not in response.text and "RuntimeError" not in response.text
    (error_id,) = re.findall(r"error id ([0-9a-f]{32})", body["desc"])
    (record,) = [r for r in caplog.records if r.name == "streams.api.errors"]
    assert error_id in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is services.failure


ADMIN_ROUTES = [
    ("GET", "/v1/tasks"),
    ("POST", "/v1/tasks/reextract"),
    ("GET", "/v1/tasks/to-v2"),
    ("POST", "/v1/tasks/to-v2/stop"),
    ("GET", "/v1/tasks/to-v2/log"),
    ("GET", "/v1/settings"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_the_administrator_routes_need_the_token(
    client: TestClient, method: str, path: str
) -> None:
    refused(client.request(method, path, headers=ACCOUNT), 401, "admin_required")
    for wrong in (f"Bearer {TOKEN[:-1]}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
        response = client.request(method, path, headers={**ACCOUNT, "Authorization": wrong})
        refused(response, 403, "bad_admin_token")
    disabled = make_client(FakeServices(Settings()))
    refused(disabled.request(method, path, headers={**ACCOUNT, **ADMIN}), 403, "admin_disabled")


def test_health_shows_counts_to_the_administrator_only(
    client: TestClient, services: FakeServices
) -> None:
    assert providers()[-1] == "CPUExecutionProvider"
    runtime = {"runtime_providers": providers(), "models": opened_models()}
    assert client.get("/v1/health").json() == {"status": "ok"}
    assert client.get("/v1/health", headers=ADMIN).json() == {
        "status": "ok",
        "faces": 1,
        "lists": 0,
        **runtime,
    }
    bad = client.get("/v1/health", headers={"Authorization": "Bearer nope"})
    refused(bad, 403, "bad_admin_token")


def test_settings_hide_the_admin_token(client: TestClient) -> None:
    shown = client.get("/v1/settings", headers=ADMIN).json()
    assert shown["api"]["admin_token"] == "***"
