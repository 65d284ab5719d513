"""No account reaches another through any route: account A creates a list, a face and an event;
account B probes every route of the app with A's ids (in the path, the query or the body) and
gets 404 or nothing, never A's data. Routes that span accounts (tasks, settings, counts) need
the administrator's token."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from streams.api.app import ROUTES
from streams.control.launch import ApiProcess
from tests.integration.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration
NOTE = "owned-by-account-a"  # A's user_data: it must never show to B


@dataclass
class Owned:
    """Account A's resources."""

    headers: dict[str, str]
    list_id: str
    face_id: str
    event_id: str
    sample_id: str

    @property
    def secrets(self) -> tuple[str, str]:
        """What only A's data holds (an error may echo the ids B sent, which B knows)."""
        return self.headers["Luna-Account-Id"], NOTE


@pytest.fixture(scope="module")
def http(api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.origin, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def photo(testdata_dir: Path) -> bytes:
    return (testdata_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg").read_bytes()


@pytest.fixture(scope="module")
def owned(http: httpx.Client, photo: bytes) -> Owned:
    a = {"Luna-Account-Id": str(uuid.uuid4())}
    list_id = http.post("/v1/lists", headers=a, json={"user_data": NOTE}).json()["list_id"]
    created = http.post(
        "/v1/faces",
        headers=a | {"content-type": "image/jpeg"},
        content=photo,
        params={"list_id": list_id, "user_data": NOTE, "avatar": 1},
    )
    assert created.status_code == 201, created.text
    (face,) = created.json()["faces"]
    sent = http.post(
        "/v1/images",
        headers=a | {"content-type": "image/jpeg"},
        content=photo,
        params={"list_id": list_id, "wait": 1},
    )
    assert sent.status_code == 200 and sent.json()["status"] == "ok", sent.text
    event_id = sent.json()["event_id"]
    deadline = time.monotonic() + 30
    sample = f"/v1/samples/{face['sample_id']}"
    while (  # stored, so B's 404s below are not just "not yet"
        http.get(f"/v1/events/{event_id}", headers=a).status_code != 200
        or http.get(sample, headers=a).status_code != 200
    ):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return Owned(a, list_id, face["face_id"], event_id, face["sample_id"])


Probe = Callable[[httpx.Client, dict[str, str], Owned, bytes], httpx.Response | None]
JPEG = {"content-type": "image/jpeg"}


def _match(
    references: Callable[[Owned], list[object]], candidates: Callable[[Owned], object]
) -> Probe:
    return lambda h, b, a, photo: h.post(
        "/v1/matcher/faces",
        headers=b,
        json={"references": references(a), "candidates": candidates(a)},
    )


# What B sends to each route, aimed at A's resources. A route with no probe fails the test.
PROBES: dict[tuple[str, str], Probe | None] = {
    ("POST", "/v1/images"): lambda h, b, a, photo: h.post(
        "/v1/images", headers=b | JPEG, content=photo, params={"list_id": a.list_id}
    ),
    ("GET", "/v1/events"): lambda h, b, a, photo: h.get(
        "/v1/events", headers=b, params={"list_id": a.list_id}
    ),
    ("GET", "/v1/events/{event_id}"): lambda h, b, a, photo: h.get(
        f"/v1/events/{a.event_id}", headers=b
    ),
    ("POST", "/v1/lists"): lambda h, b, a, photo: h.post("/v1/lists", headers=b, json={}),
    ("GET", "/v1/lists"): lambda h, b, a, photo: h.get("/v1/lists", headers=b),
    ("GET", "/v1/lists/{list_id}"): lambda h, b, a, photo: h.get(
        f"/v1/lists/{a.list_id}", headers=b
    ),
    ("DELETE", "/v1/lists/{list_id}"): lambda h, b, a, photo: h.delete(
        f"/v1/lists/{a.list_id}", headers=b
    ),
    ("PATCH", "/v1/lists/{list_id}/faces"): lambda h, b, a, photo: h.patch(
        f"/v1/lists/{a.list_id}/faces",
        headers=b,
        json={"action": "detach", "face_ids": [a.face_id]},
    ),
    ("POST", "/v1/faces"): lambda h, b, a, photo: h.post(
        "/v1/faces", headers=b, json={"event_id": a.event_id, "list_ids": [a.list_id]}
    ),
    ("GET", "/v1/faces/{face_id}"): lambda h, b, a, photo: h.get(
        f"/v1/faces/{a.face_id}", headers=b
    ),
    ("DELETE", "/v1/faces/{face_id}"): lambda h, b, a, photo: h.delete(
        f"/v1/faces/{a.face_id}", headers=b
    ),
    ("POST", "/v1/matcher/faces"): lambda h, b, a, photo: h.post(
        "/v1/matcher/faces",
        headers=b,
        json={
            "references": [{"type": "event", "id": a.event_id}],
            "candidates": {"face_ids": [a.face_id]},
        },
    ),
    ("GET", "/v1/samples/{sample_id}"): lambda h, b, a, photo: h.get(
        f"/v1/samples/{a.sample_id}", headers=b
    ),
    ("GET", "/v1/faces/{face_id}/avatar"): lambda h, b, a, photo: h.get(
        f"/v1/faces/{a.face_id}/avatar", headers=b
    ),
    ("PUT", "/v1/faces/{face_id}/avatar"): lambda h, b, a, photo: h.put(
        f"/v1/faces/{a.face_id}/avatar", headers=b | JPEG, content=photo
    ),
    ("GET", "/v1/lists/{list_id}/descriptors"): lambda h, b, a, photo: h.get(
        f"/v1/lists/{a.list_id}/descriptors", headers=b
    ),
    # A plain GET is 426; over a WebSocket B gets only its own events (test_events_socket).
    ("GET", "/v1/ws/events"): lambda h, b, a, photo: h.get("/v1/ws/events", headers=b),
    # Stateless, they hold nothing of any account: probed by the checks below all the same.
    ("POST", "/v1/liveness"): None,
    ("POST", "/v1/sdk"): None,
    ("GET", "/v1/openapi.yml"): None,
    ("GET", "/v1/openapi.json"): None,
    ("GET", "/v1/docs"): None,
    # The administrator's, below.
    ("GET", "/v1/tasks"): lambda h, b, a, photo: h.get("/v1/tasks", headers=b),
    ("POST", "/v1/tasks/reextract"): lambda h, b, a, photo: h.post(
        "/v1/tasks/reextract", headers=b, json={"version": 2}
    ),
    ("GET", "/v1/tasks/{task_id}"): lambda h, b, a, photo: h.get("/v1/tasks/to-v2", headers=b),
    ("POST", "/v1/tasks/{task_id}/stop"): lambda h, b, a, photo: h.post(
        "/v1/tasks/to-v2/stop", headers=b
    ),
    ("GET", "/v1/tasks/{task_id}/log"): lambda h, b, a, photo: h.get(
        "/v1/tasks/to-v2/log", headers=b
    ),
    ("GET", "/v1/settings"): lambda h, b, a, photo: h.get("/v1/settings", headers=b),
    ("GET", "/v1/health"): lambda h, b, a, photo: h.get("/v1/health", headers=b),
}
# Besides a path id, more of A's ids in queries and bodies: each is unknown to B.
MORE_PROBES: list[tuple[Probe, str]] = [
    (
        _match(lambda a: [{"type": "face", "id": a.face_id}], lambda a: {"list_ids": [a.list_id]}),
        "list_not_found",
    ),
    (
        _match(lambda a: [{"type": "face", "id": a.face_id}], lambda a: {"face_ids": []}),
        "bad_candidates",
    ),
    (
        lambda h, b, a, photo: h.post(
            "/v1/faces", headers=b | JPEG, content=photo, params={"list_id": a.list_id}
        ),
        "list_not_found",
    ),
    (
        lambda h, b, a, photo: h.post("/v1/faces", headers=b, json={"event_id": a.event_id}),
        "event_face_not_found",
    ),
    (
        lambda h, b, a, photo: h.post(
            "/v1/matcher/faces",
            headers=b,
            json={
                "references": [{"type": "image", "data": base64.b64encode(photo).decode()}],
                "candidates": {"face_ids": [a.face_id]},
            },
        ),
        "face_not_found",
    ),
]


def served() -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in ROUTES
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }


def never_shows(response: httpx.Response, owned: Owned) -> None:
    for secret in owned.secrets:
        assert secret not in response.text, (response.request.url, response.text)


def still_intact(http: httpx.Client, owned: Owned) -> None:
    face = http.get(f"/v1/faces/{owned.face_id}", headers=owned.headers).json()
    assert face["list_ids"] == [owned.list_id] and face["user_data"] == NOTE
    shown = http.get(f"/v1/lists/{owned.list_id}", headers=owned.headers).json()
    assert shown["face_count"] == 1


def test_every_route_has_a_probe() -> None:
    assert served() == set(PROBES)


def test_another_account_reaches_nothing_of_a_through_any_route(
    http: httpx.Client, owned: Owned, photo: bytes
) -> None:
    b = {"Luna-Account-Id": str(uuid.uuid4())}
    for (method, path), probe in sorted(PROBES.items()):
        if probe is None:
            continue
        response = probe(http, b, owned, photo)
        assert response is not None
        never_shows(response, owned)
        if path.startswith("/v1/tasks") or path == "/v1/settings":
            assert response.status_code == 401, (method, path, response.text)
        elif "{" in path:
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error_code"].endswith("_not_found")
    # Their lists and events: none of A's.
    assert http.get("/v1/events", headers=b, params={"list_id": owned.list_id}).json()["total"] == 0
    for probe, code in MORE_PROBES:
        response = probe(http, b, owned, photo)
        assert response is not None
        assert response.json()["error_code"] == code, response.text
        never_shows(response, owned)
    still_intact(http, owned)


def test_task_routes_want_the_administrator_token(http: httpx.Client, owned: Owned) -> None:
    paths = [("GET", "/v1/tasks"), ("GET", "/v1/tasks/nope"), ("POST", "/v1/tasks/nope/stop")]
    paths += [("GET", "/v1/tasks/nope/log"), ("POST", "/v1/tasks/reextract")]
    for method, path in paths:
        response = http.request(method, path, headers=owned.headers)
        assert (response.status_code, response.json()["error_code"]) == (401, "admin_required")
        wrong = owned.headers | {"Authorization": f"Bearer {ADMIN_TOKEN}x"}
        response = http.request(method, path, headers=wrong)
        assert (response.status_code, response.json()["error_code"]) == (403, "bad_admin_token")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert http.get("/v1/tasks", headers=admin).json() == {"tasks": []}
    response = http.get("/v1/tasks/nope", headers=admin)
    assert (response.status_code, response.json()["error_code"]) == (404, "task_not_found")
    response = http.get("/v1/tasks/nope/log", headers=admin)
    assert (response.status_code, response.text) == (200, "")
    response = http.get("/v1/tasks/a%0d%0ab/log", headers=admin)
    assert (response.status_code, response.json()["error_code"]) == (400, "bad_task_id")


def test_health_and_settings_reveal_nothing_without_the_token(
    http: httpx.Client, owned: Owned
) -> None:
    for headers in ({}, owned.headers):
        assert http.get("/v1/health", headers=headers).json() == {"status": "ok"}
        response = http.get("/v1/settings", headers=headers)
        assert (response.status_code, response.json()["error_code"]) == (401, "admin_required")
        assert "kafka" not in response.text
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    counts = http.get("/v1/health", headers=admin).json()
    assert counts["faces"] >= 1 and counts["lists"] >= 1
    shown = http.get("/v1/settings", headers=admin).json()
    assert shown["api"]["admin_token"] == "***" and shown["storage"]["clickhouse_url"] == "***"
    assert ADMIN_TOKEN not in http.get("/v1/settings", headers=admin).text
