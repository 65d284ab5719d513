"""The API client against an in-memory fake of the API: the requests it builds, what it parses."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from processors.image import ACCEPTED_FORMATS
from streams.api import shapes
from streams.client.http import (
    ApiConnectionError,
    ApiError,
    AsyncClient,
    Candidates,
    Client,
    Event,
    Face,
    FaceList,
    LivenessResult,
    MatchResult,
    Page,
    Reference,
    SdkFace,
)

ACCOUNT = "6d071cca-fda5-4a03-84d5-5bea65904480"
ORIGIN = "http://api.test"
# What the fake finds in an image, by its bytes.
ONE_FACE = b"\xff\xd8 one face"
TWO_FACES = b"\xff\xd8 two faces"
NO_FACE = b"\xff\xd8 no face"
HEALTH = {"status": "ok", "runtime_providers": ["CPUExecutionProvider"], "models": {}}
BROKEN = b"not an image"

Json = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _error(status: int, code: str, desc: str) -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "desc": desc})


def _box() -> Json:
    return {"x": 10.0, "y": 20.0, "width": 100.0, "height": 120.0, "score": 0.99}


def _parsed(model: type[BaseModel], request: httpx.Request) -> Any:
    """The JSON body as the server reads it (its own model, strict), or the server's 400."""
    try:
        return model.model_validate(json.loads(request.content or b"{}"))
    except ValidationError as exc:
        return _error(400, "bad_json", str(exc))


class FakeApi:
    """A small in-memory API that reads bodies with the server's models and answers as they say;
    records every request and how many were in flight at once (the async transport holds each
    for `delay` seconds)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[httpx.Request] = []
        self.lists: dict[str, Json] = {}
        self.faces: dict[str, Json] = {}
        self.events: dict[str, Json] = {}
        self.in_flight = 0
        self.peak = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle_async)

    async def _handle_async(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            return self.handle(request)
        finally:
            self.in_flight -= 1

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("Luna-Account-Id") != ACCOUNT:
            return _error(400, "account_id_missing", "the Luna-Account-Id header is required")
        for method, pattern, handler in self._routes():
            found = re.fullmatch(pattern, request.url.path)
            if found and request.method == method:
                return handler(request, *found.groups())
        return _error(404, "route_not_found", request.url.path)

    def _routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        return [
            ("GET", "/v1/health", lambda r: httpx.Response(200, json=HEALTH)),
            ("POST", "/v1/images", self._send_image),
            ("GET", "/v1/events", self._list_events),
            ("GET", "/v1/events/([^/]+)", self._get_event),
            ("POST", "/v1/lists", self._create_list),
            ("GET", "/v1/lists", self._list_lists),
            ("GET", "/v1/lists/([^/]+)", self._get_list),
            ("DELETE", "/v1/lists/([^/]+)", self._delete_list),
            ("PATCH", "/v1/lists/([^/]+)/faces", self._link),
            ("POST", "/v1/faces", self._create_faces),
            ("GET", "/v1/faces/([^/]+)", self._get_face),
            ("DELETE", "/v1/faces/([^/]+)", self._delete_face),
            ("POST", "/v1/matcher/faces", self._match),
            ("POST", "/v1/liveness", self._liveness),
            ("POST", "/v1/sdk", self._sdk),
        ]

    def _detect(self, request: httpx.Request) -> int | httpx.Response:
        """How many faces the image body holds, or the error the server would answer."""
        if request.headers.get("content-type") != "application/octet-stream":
            return _error(415, "unsupported_media_type", "send an image")
        faces = {ONE_FACE: 1, TWO_FACES: 2, NO_FACE: 0}.get(request.content)
        if faces is None:
            accepted = ", ".join(ACCEPTED_FORMATS)  # what the server's decoder takes
            return _error(400, "undecodable_image", f"data is not a {accepted} image")
        if faces == 0:
            return _error(400, "no_face", "no face found in the image")
        return faces

    def _matches(self, list_ids: list[str]) -> list[Json]:
        found = [f for f in self.faces.values() if set(f["list_ids"]) & set(list_ids)]
        return [
            {"face_id": f["face_id"], "similarity": 0.9 - 0.1 * i, "user_data": f["user_data"]}
            for i, f in enumerate(found)
        ]

    def _send_image(self, request: httpx.Request) -> httpx.Response:
        detected = self._detect(request)
        if isinstance(detected, httpx.Response):
            return detected
        list_ids = request.url.params.get_list("list_id")
        event: Json = {
            "event_id": str(uuid.uuid4()),
            "account_id": ACCOUNT,
            "source": request.url.params.get("source"),
            "created_at": _now(),
            "finished_at": _now(),
            "status": "ok",
            "error_code": None,
            "error_message": None,
            "list_ids": list_ids,
            "descriptor_version": 1,
            "faces": [
                {
                    "index": i,
                    "box": _box(),
                    "sample_id": str(uuid.uuid4()),
                    "liveness": {"probability": 0.97, "quality": 0.8},
                    "matches": self._matches(list_ids),
                }
                for i in range(detected)
            ],
        }
        self.events[event["event_id"]] = event
        if request.url.params.get("wait") == "1":
            return httpx.Response(200, json=event)
        return httpx.Response(202, json={"event_id": event["event_id"]})

    def _list_events(self, request: httpx.Request) -> httpx.Response:
        status = request.url.params.get("status")
        events = [e for e in self.events.values() if status in (None, e["status"])]
        return self._page(request, "events", events)

    def _page(self, request: httpx.Request, key: str, items: list[Json]) -> httpx.Response:
        page = int(request.url.params.get("page", 1))
        size = int(request.url.params.get("page_size", 100))
        chunk = items[(page - 1) * size : page * size]
        body = {key: chunk, "page": page, "page_size": size, "total": len(items)}
        return httpx.Response(200, json=body)

    def _get_event(self, request: httpx.Request, event_id: str) -> httpx.Response:
        if event_id not in self.events:
            return _error(404, "event_not_found", f"event {event_id} does not exist")
        return httpx.Response(200, json=self.events[event_id])

    def _create_list(self, request: httpx.Request) -> httpx.Response:
        body = _parsed(shapes.NewList, request)
        if isinstance(body, httpx.Response):
            return body
        list_id = str(uuid.uuid4())
        self.lists[list_id] = {
            "list_id": list_id,
            "user_data": body.user_data,
            "created_at": _now(),
        }
        return httpx.Response(201, json={"list_id": list_id})

    def _with_count(self, face_list: Json) -> Json:
        count = sum(face_list["list_id"] in f["list_ids"] for f in self.faces.values())
        return {**face_list, "face_count": count}

    def _list_lists(self, request: httpx.Request) -> httpx.Response:
        return self._page(request, "lists", [self._with_count(x) for x in self.lists.values()])

    def _get_list(self, request: httpx.Request, list_id: str) -> httpx.Response:
        if list_id not in self.lists:
            return _error(404, "list_not_found", f"list {list_id} does not exist")
        return httpx.Response(200, json=self._with_count(self.lists[list_id]))

    def _delete_list(self, request: httpx.Request, list_id: str) -> httpx.Response:
        if self.lists.pop(list_id, None) is None:
            return _error(404, "list_not_found", f"list {list_id} does not exist")
        for face in self.faces.values():
            face["list_ids"] = [x for x in face["list_ids"] if x != list_id]
        return httpx.Response(204)

    def _link(self, request: httpx.Request, list_id: str) -> httpx.Response:
        body = _parsed(shapes.LinkFaces, request)
        if isinstance(body, httpx.Response):
            return body
        if list_id not in self.lists:
            return _error(404, "list_not_found", f"list {list_id} does not exist")
        for face_id in body.face_ids:
            ids = [x for x in self.faces[face_id]["list_ids"] if x != list_id]
            self.faces[face_id]["list_ids"] = ids + [list_id] * (body.action == "attach")
        return httpx.Response(204)

    def _new_face(self, user_data: str | None, list_ids: list[str], event_id: str | None) -> Json:
        face: Json = {
            "face_id": str(uuid.uuid4()),
            "account_id": ACCOUNT,
            "user_data": user_data,
            "list_ids": list_ids,
            "event_id": event_id,
            "sample_id": str(uuid.uuid4()),
            "created_at": _now(),
            "descriptor_versions": [1],
        }
        self.faces[face["face_id"]] = face
        return face

    def _create_faces(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("content-type") == "application/json":
            body = _parsed(shapes.FaceFromEvent, request)
            if isinstance(body, httpx.Response):
                return body
            if body.event_id not in self.events:
                return _error(404, "event_not_found", f"event {body.event_id} does not exist")
            face = self._new_face(body.user_data, body.list_ids or [], body.event_id)
            return httpx.Response(201, json={"faces": [face]})
        detected = self._detect(request)
        if isinstance(detected, httpx.Response):
            return detected
        params = request.url.params
        list_ids = params.get_list("list_id")
        if missing := [x for x in list_ids if x not in self.lists]:
            return _error(404, "list_not_found", f"list {missing[0]} does not exist")
        count = detected if params.get("multi_face_allowed") == "1" else 1
        faces = [self._new_face(params.get("user_data"), list_ids, None) for _ in range(count)]
        return httpx.Response(201, json={"faces": faces})

    def _get_face(self, request: httpx.Request, face_id: str) -> httpx.Response:
        if face_id not in self.faces:
            return _error(404, "face_not_found", f"face {face_id} does not exist")
        return httpx.Response(200, json=self.faces[face_id])

    def _delete_face(self, request: httpx.Request, face_id: str) -> httpx.Response:
        if self.faces.pop(face_id, None) is None:
            return _error(404, "face_not_found", f"face {face_id} does not exist")
        return httpx.Response(204)

    def _match(self, request: httpx.Request) -> httpx.Response:
        body = _parsed(shapes.MatchRequest, request)
        if isinstance(body, httpx.Response):
            return body
        matches = self._matches(body.candidates.list_ids)[: body.limit or 3]
        results = [{"reference": ref.shown(), "matches": matches} for ref in body.references]
        answer = shapes.MatchResults.model_validate({"results": results, "descriptor_version": 1})
        return httpx.Response(200, json=answer.model_dump(mode="json"))

    def _liveness(self, request: httpx.Request) -> httpx.Response:
        detected = self._detect(request)
        if isinstance(detected, httpx.Response):
            return detected
        return httpx.Response(200, json=shapes.LIVENESS)

    def _sdk(self, request: httpx.Request) -> httpx.Response:
        detected = self._detect(request)
        if isinstance(detected, httpx.Response):
            return detected
        live = request.url.params.get("estimate_liveness") == "1"
        face = {"box": _box(), "landmarks": [1.0, 2.0, 3.0, 4.0]}
        faces = [{**face, "liveness": shapes.LIVENESS} if live else face] * detected
        return httpx.Response(200, json={"faces": faces})


class _Awaited:
    """The sync client's methods as coroutines, so that one test runs against both clients."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, fake: FakeApi) -> AsyncIterator[Any]:
    if request.param == "sync":
        with Client(ORIGIN, account_id=ACCOUNT, transport=fake.transport()) as client:
            yield _Awaited(client)
    else:
        async with AsyncClient(
            ORIGIN, account_id=ACCOUNT, transport=fake.async_transport()
        ) as aclient:
            yield aclient


def _last(fake: FakeApi) -> httpx.Request:
    return fake.requests[-1]


async def test_every_request_carries_the_account(api: Any, fake: FakeApi) -> None:
    assert await api.health() == HEALTH
    list_id = await api.create_list()
    await api.get_list(list_id)
    await api.send_image(ONE_FACE)
    assert len(fake.requests) == 4
    for request in fake.requests:
        assert request.headers["Luna-Account-Id"] == ACCOUNT
        assert request.url.host == "api.test"


async def test_send_image_answers_the_event_id(api: Any, fake: FakeApi) -> None:
    event_id = await api.send_image(ONE_FACE, list_ids=["a", "b"], source="door")
    request = _last(fake)
    assert (request.method, request.url.path) == ("POST", "/v1/images")
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.content == ONE_FACE
    assert request.url.params.get_list("list_id") == ["a", "b"]
    assert (request.url.params["source"], request.url.params["wait"]) == ("door", "0")
    assert event_id in fake.events


async def test_send_image_with_wait_answers_the_finished_event(api: Any, fake: FakeApi) -> None:
    list_id = await api.create_list(user_data="staff")
    [alice] = await api.create_faces(ONE_FACE, list_ids=[list_id], user_data="alice")
    event = await api.send_image(TWO_FACES, list_ids=[list_id], wait=True, timeout=60)
    request = _last(fake)
    assert (request.url.params["wait"], request.url.params["timeout"]) == ("1", "60")
    # The HTTP read timeout covers the server's wait on top of the usual allowance.
    assert request.extensions["timeout"]["read"] > 60
    assert isinstance(event, Event)
    assert (event.status, event.list_ids, len(event.faces)) == ("ok", (list_id,), 2)
    assert event.faces[1].index == 1 and event.faces[0].box.width == 100.0
    assert event.faces[0].liveness is not None and event.faces[0].liveness.probability == 0.97
    assert event.best_match is not None
    assert (event.best_match.face_id, event.best_match.user_data) == (alice.face_id, "alice")
    assert isinstance(event.created_at, datetime)


async def test_get_event_parses_it_and_a_missing_one_raises(api: Any, fake: FakeApi) -> None:
    event_id = await api.send_image(ONE_FACE, source="door")
    event = await api.get_event(event_id)
    assert (_last(fake).method, _last(fake).url.path) == ("GET", f"/v1/events/{event_id}")
    assert (event.event_id, event.source, event.account_id) == (event_id, "door", ACCOUNT)
    with pytest.raises(ApiError) as caught:
        await api.get_event("nope")
    assert (caught.value.status, caught.value.code) == (404, "event_not_found")
    assert "nope" in caught.value.desc


async def test_list_events_sends_the_filters_and_parses_a_page(api: Any, fake: FakeApi) -> None:
    for _ in range(3):
        await api.send_image(ONE_FACE)
    since = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    page = await api.list_events(
        created_from=since,
        created_to="2030-01-01T00:00:00Z",
        list_id="l1",
        similarity_gte=0.5,
        liveness_gte=0.9,
        status="ok",
        error_code="no_face",
        page=2,
        page_size=2,
    )
    params = _last(fake).url.params
    assert _last(fake).url.path == "/v1/events"
    assert dict(params) == {
        "created_from": since.isoformat(),
        "created_to": "2030-01-01T00:00:00Z",
        "list_id": "l1",
        "similarity_gte": "0.5",
        "liveness_gte": "0.9",
        "status": "ok",
        "error_code": "no_face",
        "page": "2",
        "page_size": "2",
    }
    assert isinstance(page, Page)
    assert (page.page, page.page_size, page.total, len(page.items)) == (2, 2, 3, 1)
    assert isinstance(page.items[0], Event)


async def test_lists_lifecycle(api: Any, fake: FakeApi) -> None:
    list_id = await api.create_list(user_data="staff")
    assert json.loads(_last(fake).content) == {"user_data": "staff"}
    assert _last(fake).headers["content-type"] == "application/json"
    [face] = await api.create_faces(ONE_FACE)

    assert await api.attach_faces(list_id, [face.face_id]) is None
    request = _last(fake)
    assert (request.method, request.url.path) == ("PATCH", f"/v1/lists/{list_id}/faces")
    assert json.loads(request.content) == {"action": "attach", "face_ids": [face.face_id]}
    got = await api.get_list(list_id)
    assert isinstance(got, FaceList)
    assert (got.list_id, got.user_data, got.face_count) == (list_id, "staff", 1)

    await api.detach_faces(list_id, [face.face_id])
    assert json.loads(_last(fake).content)["action"] == "detach"
    page = await api.list_lists(page=1, page_size=10)
    assert dict(_last(fake).url.params) == {"page": "1", "page_size": "10"}
    assert [(x.list_id, x.face_count) for x in page.items] == [(list_id, 0)]

    assert await api.delete_list(list_id) is None
    assert (_last(fake).method, _last(fake).url.path) == ("DELETE", f"/v1/lists/{list_id}")
    with pytest.raises(ApiError, match="list_not_found"):
        await api.get_list(list_id)


async def test_create_faces_sends_every_option(api: Any, fake: FakeApi) -> None:
    list_id = await api.create_list()
    faces = await api.create_faces(
        TWO_FACES,
        list_ids=[list_id],
        user_data="alice",
        warped=True,
        multi_face_allowed=True,
        get_major_detection=False,
        score_threshold=0.5,
        pitch_threshold=20,
        roll_threshold=30,
        yaw_threshold=40.5,
    )
    request = _last(fake)
    assert (request.method, request.url.path) == ("POST", "/v1/faces")
    assert request.content == TWO_FACES
    assert dict(request.url.params) == {
        "list_id": list_id,
        "user_data": "alice",
        "warped": "1",
        "multi_face_allowed": "1",
        "get_major_detection": "0",
        "score_threshold": "0.5",
        "pitch_threshold": "20",
        "roll_threshold": "30",
        "yaw_threshold": "40.5",
    }
    assert len(faces) == 2 and all(isinstance(f, Face) for f in faces)
    assert faces[0].list_ids == (list_id,) and faces[0].user_data == "alice"
    assert faces[0].descriptor_versions == (1,) and faces[0].sample_id


async def test_create_faces_leaves_unset_options_out(api: Any, fake: FakeApi) -> None:
    await api.create_faces(ONE_FACE)
    assert dict(_last(fake).url.params) == {
        "warped": "0",
        "multi_face_allowed": "0",
        "get_major_detection": "0",
    }


@pytest.mark.parametrize(("image", "code"), [(NO_FACE, "no_face"), (BROKEN, "undecodable_image")])
async def test_a_refused_image_raises_its_error_code(api: Any, image: bytes, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        await api.create_faces(image)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert str(caught.value).startswith(f"400 {code}: ")


async def test_create_face_from_event_and_back(api: Any, fake: FakeApi) -> None:
    event_id = await api.send_image(TWO_FACES)
    face = await api.create_face_from_event(event_id, 1, user_data="bob", list_ids=["l1"])
    request = _last(fake)
    assert (request.method, request.url.path) == ("POST", "/v1/faces")
    assert request.headers["content-type"] == "application/json"
    body = {"event_id": event_id, "face_index": 1, "user_data": "bob", "list_ids": ["l1"]}
    assert json.loads(request.content) == body
    assert (face.event_id, face.user_data, face.list_ids) == (event_id, "bob", ("l1",))

    assert await api.get_face(face.face_id) == face
    assert (_last(fake).method, _last(fake).url.path) == ("GET", f"/v1/faces/{face.face_id}")
    assert await api.delete_face(face.face_id) is None
    assert _last(fake).method == "DELETE"
    with pytest.raises(ApiError) as caught:
        await api.get_face(face.face_id)
    assert caught.value.code == "face_not_found"


async def test_match_sends_references_and_candidates(api: Any, fake: FakeApi) -> None:
    list_id = await api.create_list()
    [alice] = await api.create_faces(ONE_FACE, list_ids=[list_id], user_data="alice")
    references = [Reference.face(alice.face_id), Reference.event("e1", 2), Reference.image(b"jpg")]
    results = await api.match(
        references, Candidates(list_ids=[list_id], face_ids=["f1"]), limit=5, threshold=0.3
    )
    request = _last(fake)
    assert (request.method, request.url.path) == ("POST", "/v1/matcher/faces")
    assert json.loads(request.content) == {
        "references": [
            {"type": "face", "id": alice.face_id},
            {"type": "event", "id": "e1", "face_index": 2},
            {"type": "image", "data": base64.b64encode(b"jpg").decode()},
        ],
        "candidates": {"list_ids": [list_id], "face_ids": ["f1"]},
        "limit": 5,
        "threshold": 0.3,
    }
    assert len(results) == 3 and all(isinstance(r, MatchResult) for r in results)
    assert results[1].reference == {"type": "event", "id": "e1", "face_index": 2}
    assert [(m.face_id, m.similarity, m.user_data) for m in results[0].matches] == [
        (alice.face_id, 0.9, "alice")
    ]


async def test_match_leaves_defaults_out(api: Any, fake: FakeApi) -> None:
    await api.match([Reference.face("f0")], Candidates(list_ids=["l1"]))
    body = json.loads(_last(fake).content)
    assert body["candidates"] == {"list_ids": ["l1"]}
    assert (body["limit"], "threshold" in body) == (3, False)


async def test_liveness_and_sdk(api: Any, fake: FakeApi) -> None:
    result = await api.liveness(ONE_FACE, os="IOS")
    request = _last(fake)
    assert (request.method, request.url.path, dict(request.url.params)) == (
        "POST",
        "/v1/liveness",
        {"OS": "IOS"},
    )
    assert isinstance(result, LivenessResult)
    assert (result.version, result.liveness.prediction, result.liveness.probability) == (
        "v2",
        "real",
        0.97,
    )
    assert result.face is not None and result.face.score == 0.99
    await api.liveness(ONE_FACE)
    assert not _last(fake).url.params

    faces = await api.sdk(TWO_FACES, estimate_liveness=True)
    assert (_last(fake).url.path, _last(fake).url.params["estimate_liveness"]) == ("/v1/sdk", "1")
    assert len(faces) == 2 and all(isinstance(f, SdkFace) for f in faces)
    assert faces[0].landmarks == (1.0, 2.0, 3.0, 4.0)
    assert faces[0].liveness is not None and faces[0].liveness.liveness.prediction == "real"
    [plain] = await api.sdk(ONE_FACE)
    assert plain.liveness is None


def _answering(response: httpx.Response) -> Client:
    transport = httpx.MockTransport(lambda request: response)
    return Client(ORIGIN, account_id=ACCOUNT, transport=transport)


def test_an_error_that_is_not_json_keeps_status_and_text() -> None:
    response = httpx.Response(502, text="<html>Bad Gateway</html>")
    with _answering(response) as client, pytest.raises(ApiError) as caught:
        client.health()
    assert (caught.value.status, caught.value.code) == (502, "http_error")
    assert "Bad Gateway" in caught.value.desc


def test_an_answer_off_the_spec_raises_bad_response() -> None:
    response = httpx.Response(201, json={"id": "x"})
    with _answering(response) as client, pytest.raises(ApiError) as caught:
        client.create_list()
    assert (caught.value.status, caught.value.code) == (201, "bad_response")


def _failing(exc: type[httpx.TransportError]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("down", request=request)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("exc", "code"), [(httpx.ConnectError, "connection_error"), (httpx.ReadTimeout, "timeout")]
)
async def test_no_answer_raises_a_connection_error(
    exc: type[httpx.TransportError], code: str
) -> None:
    transport = _failing(exc)
    client = Client(ORIGIN, account_id=ACCOUNT, transport=transport)
    with client, pytest.raises(ApiConnectionError) as caught:
        client.get_face("f1")
    assert (caught.value.status, caught.value.code) == (0, code)
    assert f"GET {ORIGIN}/v1/faces/f1" in caught.value.desc
    async with AsyncClient(ORIGIN, account_id=ACCOUNT, transport=transport) as aclient:
        with pytest.raises(ApiError) as caught_async:
            await aclient.get_face("f1")
    assert caught_async.value.code == code


def test_path_ids_are_escaped() -> None:
    fake = FakeApi()
    client = Client(ORIGIN + "/", account_id=ACCOUNT, transport=fake.transport())
    with client, pytest.raises(ApiError):
        client.get_face("a/b c")
    assert fake.requests[-1].url.raw_path == b"/v1/faces/a%2Fb%20c"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.start_reextraction(7), "bad_version"),
        (lambda c: c.start_reextraction(2, lanes=999), "bad_lanes"),
        (lambda c: c.start_reextraction(2, task_id="a b"), "bad_task_id"),
    ],
)
def test_what_the_server_would_refuse_is_refused_unsent_with_its_code(
    call: Callable[[Client], Any], code: str
) -> None:
    sent: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    transport = httpx.MockTransport(server)
    with (
        Client(ORIGIN, account_id=ACCOUNT, transport=transport) as client,
        pytest.raises(ApiError) as refused,
    ):
        call(client)
    assert (refused.value.status, refused.value.code, sent) == (400, code, [])
