"""The HTTP API against the running stack: real broker, ClickHouse, worker and API processes."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import ApiProcess

pytestmark = pytest.mark.integration
JPEG = {"content-type": "image/jpeg"}


@pytest.fixture(scope="module")
def http(api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.origin, timeout=60) as client:
        yield client


def account() -> dict[str, str]:
    return {"Luna-Account-Id": str(uuid.uuid4())}


@pytest.fixture(scope="module")
def johns(testdata_dir: Path) -> dict[str, list[bytes]]:
    return {
        p.name: [f.read_bytes() for f in read_folder(p, IMAGE_EXTENSIONS)]
        for p in sorted((testdata_dir / "johns").iterdir())
    }


def enroll(
    http: httpx.Client, headers: dict[str, str], johns: dict[str, list[bytes]]
) -> tuple[str, dict[str, str]]:
    list_id = http.post("/v1/lists", headers=headers, json={"user_data": "known"}).json()["list_id"]
    faces = {}
    for name, images in johns.items():
        response = http.post(
            "/v1/faces",
            headers=headers | JPEG,
            content=images[0],
            params={"list_id": list_id, "user_data": name},
        )
        assert response.status_code == 201, response.text
        (face,) = response.json()["faces"]
        faces[face["face_id"]] = name
    return list_id, faces


def ingest(
    http: httpx.Client, headers: dict[str, str], image: bytes, **params: str
) -> httpx.Response:
    """`image` posted with wait=1: the answer once the pipeline has processed it."""
    query: dict[str, str | int] = {"wait": 1, "timeout": 60, **params}
    return http.post("/v1/images", headers=headers | JPEG, content=image, params=query)


def wait_for(
    http: httpx.Client, path: str, headers: dict[str, str], timeout: float = 30
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(path, headers=headers)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "account_id_missing"), ({"Luna-Account-Id": "not-a-uuid"}, "account_id_malformed")],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/lists"),
        ("GET", "/v1/lists"),
        ("POST", "/v1/images"),
        ("GET", "/v1/events"),
        ("POST", "/v1/faces"),
        ("POST", "/v1/matcher/faces"),
    ],
)
def test_every_resource_needs_a_valid_account(
    http: httpx.Client, method: str, path: str, headers: dict[str, str], code: str
) -> None:
    response = http.request(method, path, headers=headers | JPEG, content=b"x")
    assert response.status_code == 400
    assert response.json()["error_code"] == code


def test_enroll_then_ingest_and_wait_returns_the_match(
    http: httpx.Client, johns: dict[str, list[bytes]]
) -> None:
    headers = account()
    list_id, faces = enroll(http, headers, johns)
    assert http.get(f"/v1/lists/{list_id}", headers=headers).json()["face_count"] == len(johns)
    for name, images in johns.items():
        response = ingest(http, headers, images[4], list_id=list_id)
        assert response.status_code == 200, response.text
        event = response.json()
        assert event["status"] == "ok"
        assert faces[event["faces"][0]["matches"][0]["face_id"]] == name
    # The event is stored and readable, scoped to the account.
    stored = wait_for(http, f"/v1/events/{event['event_id']}", headers)
    assert stored.status_code == 200, stored.text
    assert (
        stored.json()["faces"][0]["matches"][0]["face_id"]
        == event["faces"][0]["matches"][0]["face_id"]
    )
    assert http.get(f"/v1/events/{event['event_id']}", headers=account()).status_code == 404


def test_ingest_without_wait_is_accepted_and_a_slow_wait_times_out(
    http: httpx.Client, johns: dict[str, list[bytes]]
) -> None:
    headers = account()
    image = johns["John_Simm"][1]
    accepted = http.post("/v1/images", headers=headers | JPEG, content=image)
    assert accepted.status_code == 202 and uuid.UUID(accepted.json()["event_id"])
    slow = http.post(
        "/v1/images", headers=headers | JPEG, content=image, params={"wait": 1, "timeout": 0.1}
    )
    assert slow.status_code == 504
    assert slow.json()["error_code"] == "pipeline_timeout"
    assert "GET /v1/events/" in slow.json()["desc"]


def test_multipart_upload_and_bad_bodies(http: httpx.Client, johns: dict[str, list[bytes]]) -> None:
    headers = account()
    form = http.post(
        "/v1/images",
        headers=headers,
        files={"image": ("a.jpg", johns["John_Simm"][2], "image/jpeg")},
    )
    assert form.status_code == 202
    no_file = http.post(
        "/v1/images", headers=headers, files={"other": ("a.jpg", b"x", "image/jpeg")}
    )
    assert (no_file.status_code, no_file.json()["error_code"]) == (400, "image_missing")
    text = http.post(
        "/v1/images", headers=headers | {"content-type": "text/plain"}, content=b"hello"
    )
    assert (text.status_code, text.json()["error_code"]) == (415, "unsupported_media_type")
    huge = http.post("/v1/images", headers=headers | JPEG, content=b"\0" * (26 * 1024 * 1024))
    assert (huge.status_code, huge.json()["error_code"]) == (413, "body_too_large")
    broken = http.post("/v1/faces", headers=headers | JPEG, content=johns["John_Simm"][2][:500])
    assert (broken.status_code, broken.json()["error_code"]) == (400, "truncated_image")
    unknown = http.post(
        "/v1/images", headers=headers | JPEG, content=b"x", params={"list_id": "nope"}
    )
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "list_not_found")


def test_accounts_are_isolated(http: httpx.Client, johns: dict[str, list[bytes]]) -> None:
    owner, stranger = account(), account()
    list_id, faces = enroll(http, owner, johns)
    face_id = next(iter(faces))
    assert http.get(f"/v1/lists/{list_id}", headers=stranger).status_code == 404
    assert http.get(f"/v1/faces/{face_id}", headers=stranger).status_code == 404
    assert http.delete(f"/v1/faces/{face_id}", headers=stranger).status_code == 404
    assert http.get("/v1/lists", headers=stranger).json()["total"] == 0
    body = {"references": [{"type": "face", "id": face_id}], "candidates": {"list_ids": [list_id]}}
    assert http.post("/v1/matcher/faces", headers=stranger, json=body).status_code == 404
    # The stranger's own image matches nothing of the owner's, even by ingest into its own list.
    own_list = http.post("/v1/lists", headers=stranger).json()["list_id"]
    event = ingest(http, stranger, johns["John_Salley"][3], list_id=own_list).json()
    assert event["faces"][0]["matches"] == []


def test_lists_faces_linking_and_matching(
    http: httpx.Client, johns: dict[str, list[bytes]]
) -> None:
    headers = account()
    list_id, faces = enroll(http, headers, johns)
    by_name = {name: face_id for face_id, name in faces.items()}
    other = http.post("/v1/lists", headers=headers, json={"user_data": "other"}).json()["list_id"]
    attach = {"action": "attach", "face_ids": [by_name["John_Simm"]]}
    assert http.patch(f"/v1/lists/{other}/faces", headers=headers, json=attach).status_code == 204
    face = http.get(f"/v1/faces/{by_name['John_Simm']}", headers=headers).json()
    assert sorted(face["list_ids"]) == sorted([list_id, other])
    assert face["descriptor_versions"] == [1]

    image = base64.b64encode(johns["John_Simm"][6]).decode()
    body: dict[str, Any] = {
        "references": [
            {"type": "image", "data": image},
            {"type": "face", "id": by_name["John_Simm"]},
        ],
        "candidates": {"list_ids": [other]},
        "limit": 5,
    }
    results = http.post("/v1/matcher/faces", headers=headers, json=body).json()["results"]
    assert [m["face_id"] for m in results[0]["matches"]] == [by_name["John_Simm"]]
    assert results[1]["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)

    detach = {"action": "detach", "face_ids": [by_name["John_Simm"]]}
    assert http.patch(f"/v1/lists/{other}/faces", headers=headers, json=detach).status_code == 204
    assert http.get(f"/v1/lists/{other}", headers=headers).json()["face_count"] == 0
    assert http.delete(f"/v1/lists/{list_id}", headers=headers).status_code == 204
    assert http.get(f"/v1/faces/{by_name['John_Simm']}", headers=headers).json()["list_ids"] == []
    assert http.delete(f"/v1/faces/{by_name['John_Simm']}", headers=headers).status_code == 204
    assert http.get(f"/v1/faces/{by_name['John_Simm']}", headers=headers).status_code == 404


def test_face_from_an_event_and_event_references(
    http: httpx.Client, johns: dict[str, list[bytes]]
) -> None:
    headers = account()
    list_id = http.post("/v1/lists", headers=headers).json()["list_id"]
    event = ingest(http, headers, johns["John_Savage"][0]).json()
    assert wait_for(http, f"/v1/events/{event['event_id']}", headers).status_code == 200
    created = http.post(
        "/v1/faces",
        headers=headers,
        json={
            "event_id": event["event_id"],
            "face_index": 0,
            "user_data": "savage",
            "list_ids": [list_id],
        },
    )
    assert created.status_code == 201, created.text
    (face,) = created.json()["faces"]
    assert (
        face["event_id"] == event["event_id"]
        and face["sample_id"] == event["faces"][0]["sample_id"]
    )
    probe = ingest(http, headers, johns["John_Savage"][7]).json()
    assert wait_for(http, f"/v1/events/{probe['event_id']}", headers).status_code == 200
    body = {
        "references": [{"type": "event", "id": probe["event_id"]}],
        "candidates": {"face_ids": [face["face_id"]]},
    }
    (result,) = http.post("/v1/matcher/faces", headers=headers, json=body).json()["results"]
    assert result["matches"][0]["face_id"] == face["face_id"]
    missing = http.post("/v1/faces", headers=headers, json={"event_id": str(uuid.uuid4())})
    assert (missing.status_code, missing.json()["error_code"]) == (404, "event_face_not_found")


def test_event_listing_filters_and_pages(http: httpx.Client, johns: dict[str, list[bytes]]) -> None:
    headers = account()
    list_id, _ = enroll(http, headers, johns)
    ids = []
    for images in johns.values():
        event = ingest(http, headers, images[2], list_id=list_id).json()
        ids.append(event["event_id"])
    bad = ingest(http, headers, b"not an image")
    assert bad.json()["error_code"] == "undecodable_image"
    for event_id in [*ids, bad.json()["event_id"]]:
        assert wait_for(http, f"/v1/events/{event_id}", headers).status_code == 200

    def page(**params: Any) -> dict[str, Any]:
        response = http.get("/v1/events", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    assert page()["total"] == len(ids) + 1
    assert page(status="error")["total"] == 1
    assert page(error_code="undecodable_image")["events"][0]["event_id"] == bad.json()["event_id"]
    assert page(list_id=list_id)["total"] == len(ids)
    assert page(similarity_gte=0.5)["total"] == len(ids)
    assert page(similarity_gte=0.999)["total"] == 0
    assert page(liveness_gte=0.0)["total"] == len(ids)
    first, second = page(page=1, page_size=3), page(page=2, page_size=3)
    assert len(first["events"]) == 3 and len(second["events"]) == len(ids) + 1 - 3
    assert not {e["event_id"] for e in first["events"]} & {e["event_id"] for e in second["events"]}
    assert page(created_from="2100-01-01T00:00:00Z")["total"] == 0
    assert page(created_to="2100-01-01T00:00:00+02:00")["total"] == len(ids) + 1
    for wrong in ("yesterday", "2999-01-01T00:00:00Z"):
        response = http.get("/v1/events", headers=headers, params={"created_from": wrong})
        assert (response.status_code, response.json()["error_code"]) == (400, "bad_parameter")


def test_spec_and_docs_are_served(http: httpx.Client) -> None:
    assert "openapi: 3.1.0" in http.get("/v1/openapi.yml").text
    page = http.get("/v1/docs")
    assert page.status_code == 200 and "/v1/matcher/faces" in page.text
    missing = http.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()["error_code"]) == (404, "route_not_found")


def test_a_deleted_face_stops_matching_in_the_pipeline(
    http: httpx.Client, johns: dict[str, list[bytes]]
) -> None:
    headers = account()
    list_id, faces = enroll(http, headers, johns)
    face_id = next(f for f, name in faces.items() if name == "John_Schneider")

    def best(image: bytes) -> list[str]:
        event = ingest(http, headers, image, list_id=list_id).json()
        return [m["face_id"] for m in event["faces"][0]["matches"]]

    assert best(johns["John_Schneider"][8])[0] == face_id
    assert http.delete(f"/v1/faces/{face_id}", headers=headers).status_code == 204
    deadline = time.monotonic() + 20  # the workers learn it from the faces topic
    while face_id in best(johns["John_Schneider"][8]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert face_id not in best(johns["John_Schneider"][8])
