"""A typed Python client for the facestream HTTP API (`streams/api/openapi.yml`), sync and async.

Enroll a person, then recognise them::

    from pathlib import Path

    from streams.apiclient import Candidates, Client, Reference

    with Client("http://127.0.0.1:5000", account_id="6d071cca-fda5-4a03-84d5-5bea65904480") as api:
        list_id = api.create_list(user_data="staff")
        alice = Path("alice.jpg").read_bytes()
        [face] = api.create_faces(alice, list_ids=[list_id], user_data="alice")
        # Through the pipeline: the finished event carries each face's best matches.
        event = api.send_image(Path("door.jpg").read_bytes(), list_ids=[list_id], wait=True)
        if event.best_match:
            print(event.best_match.user_data, event.best_match.similarity)
        # Or ask the matcher directly, here about the event's first face.
        [result] = api.match([Reference.event(event.event_id)], Candidates(list_ids=[list_id]))
        print([(m.user_data, m.similarity) for m in result.matches])

The task routes and the counts of `health` are the administrator's: pass
`admin_token` (the server's `api.admin_token`). `AsyncClient` has the same methods as coroutines.
Every failure is an `ApiError`: the server's
`{"error_code", "desc"}` with its status, or an `ApiConnectionError` (status 0) when no answer
came. One `Endpoints` object builds each request and parses its response; the two clients only
send.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Self, TypeVar, overload
from urllib.parse import quote

import httpx

DEFAULT_ORIGIN = "http://127.0.0.1:5000"
ACCOUNT_HEADER = "Luna-Account-Id"
# The server holds a wait=1 request up to this many seconds when no timeout is given.
DEFAULT_WAIT = 30.0

Json = Mapping[str, Any]
T = TypeVar("T")
P = ParamSpec("P")


class ApiError(Exception):
    """The API refused or failed a request: its status, error_code and desc."""

    def __init__(self, status: int, code: str, desc: str) -> None:
        super().__init__(f"{status} {code}: {desc}")
        self.status = status
        self.code = code
        self.desc = desc


class ApiConnectionError(ApiError):
    """No answer came (refused, reset, timed out): status 0, code `timeout`/`connection_error`."""

    @classmethod
    def wrap(cls, exc: httpx.TransportError) -> ApiConnectionError:
        code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
        return cls(0, code, f"{exc.request.method} {exc.request.url}: {type(exc).__name__} {exc}")


# --- results -------------------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float
    score: float | None = None

    @classmethod
    def parse(cls, data: Json) -> Box:
        return cls(data["x"], data["y"], data["width"], data["height"], data.get("score"))


@dataclass(frozen=True)
class Match:
    face_id: str
    similarity: float
    user_data: str | None = None

    @classmethod
    def parse(cls, data: Json) -> Match:
        return cls(data["face_id"], data["similarity"], data.get("user_data"))


@dataclass(frozen=True)
class FaceLiveness:
    probability: float
    quality: float | None = None

    @classmethod
    def parse(cls, data: Json) -> FaceLiveness:
        return cls(data["probability"], data.get("quality"))


@dataclass(frozen=True)
class EventFace:
    index: int
    box: Box
    sample_id: str | None = None
    liveness: FaceLiveness | None = None
    matches: tuple[Match, ...] = ()

    @classmethod
    def parse(cls, data: Json) -> EventFace:
        liveness = data.get("liveness")
        return cls(
            index=data["index"],
            box=Box.parse(data["box"]),
            sample_id=data.get("sample_id"),
            liveness=FaceLiveness.parse(liveness) if liveness else None,
            matches=tuple(Match.parse(m) for m in data.get("matches") or ()),
        )


@dataclass(frozen=True)
class Event:
    event_id: str
    account_id: str
    status: str
    created_at: datetime
    finished_at: datetime | None = None
    source: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    list_ids: tuple[str, ...] = ()
    descriptor_version: int | None = None
    faces: tuple[EventFace, ...] = ()

    @property
    def best_match(self) -> Match | None:
        """The most similar match over all faces, or None when nothing matched."""
        matches = [m for face in self.faces for m in face.matches]
        return max(matches, key=lambda m: m.similarity, default=None)

    @classmethod
    def parse(cls, data: Json) -> Event:
        return cls(
            event_id=data["event_id"],
            account_id=data["account_id"],
            status=data["status"],
            created_at=datetime.fromisoformat(data["created_at"]),
            finished_at=_time(data.get("finished_at")),
            source=data.get("source"),
            error_code=data.get("error_code"),
            error_message=data.get("error_message"),
            list_ids=tuple(data.get("list_ids") or ()),
            descriptor_version=data.get("descriptor_version"),
            faces=tuple(EventFace.parse(f) for f in data.get("faces") or ()),
        )


@dataclass(frozen=True)
class FaceList:
    list_id: str
    created_at: datetime
    user_data: str | None = None
    face_count: int | None = None

    @classmethod
    def parse(cls, data: Json) -> FaceList:
        return cls(
            list_id=data["list_id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            user_data=data.get("user_data"),
            face_count=data.get("face_count"),
        )


@dataclass(frozen=True)
class Face:
    face_id: str
    account_id: str
    created_at: datetime
    user_data: str | None = None
    list_ids: tuple[str, ...] = ()
    event_id: str | None = None
    sample_id: str | None = None
    descriptor_versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: Json) -> Face:
        return cls(
            face_id=data["face_id"],
            account_id=data["account_id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            user_data=data.get("user_data"),
            list_ids=tuple(data.get("list_ids") or ()),
            event_id=data.get("event_id"),
            sample_id=data.get("sample_id"),
            descriptor_versions=tuple(data.get("descriptor_versions") or ()),
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    page: int
    page_size: int
    total: int

    @classmethod
    def parse(cls, data: Json, key: str, item: Callable[[Json], T]) -> Page[T]:
        items = tuple(item(i) for i in data[key])
        return cls(items, data["page"], data["page_size"], data["total"])


@dataclass(frozen=True)
class Reference:
    """What to match: a stored face, an event's face, or an image sent along."""

    type: Literal["face", "event", "image"]
    id: str | None = None
    face_index: int = 0
    data: bytes | None = None

    @classmethod
    def face(cls, face_id: str) -> Reference:
        return cls("face", id=face_id)

    @classmethod
    def event(cls, event_id: str, face_index: int = 0) -> Reference:
        return cls("event", id=event_id, face_index=face_index)

    @classmethod
    def image(cls, image: bytes) -> Reference:
        return cls("image", data=image)

    def to_json(self) -> dict[str, Any]:
        if self.type == "image":
            return {"type": "image", "data": base64.b64encode(self.data or b"").decode()}
        if self.type == "event":
            return {"type": "event", "id": self.id, "face_index": self.face_index}
        return {"type": "face", "id": self.id}


@dataclass(frozen=True)
class Candidates:
    """Whom to match against: faces of these lists and these faces."""

    list_ids: Sequence[str] = ()
    face_ids: Sequence[str] = ()

    def to_json(self) -> dict[str, list[str]]:
        found = {"list_ids": list(self.list_ids), "face_ids": list(self.face_ids)}
        return {key: ids for key, ids in found.items() if ids}


@dataclass(frozen=True)
class MatchResult:
    reference: Json
    matches: tuple[Match, ...]

    @classmethod
    def parse(cls, data: Json) -> MatchResult:
        return cls(data.get("reference") or {}, tuple(Match.parse(m) for m in data["matches"]))


@dataclass(frozen=True)
class LivenessEstimate:
    prediction: Literal["real", "spoof"]
    probability: float
    quality: float | None = None
    probability_threshold: float | None = None
    quality_threshold: float | None = None

    @classmethod
    def parse(cls, data: Json) -> LivenessEstimate:
        return cls(
            prediction=data["prediction"],
            probability=data["probability"],
            quality=data.get("quality"),
            probability_threshold=data.get("probability_threshold"),
            quality_threshold=data.get("quality_threshold"),
        )


@dataclass(frozen=True)
class LivenessResult:
    version: Literal["v1", "v2"]
    liveness: LivenessEstimate
    face: Box | None = None

    @classmethod
    def parse(cls, data: Json) -> LivenessResult:
        face = data.get("face")
        return cls(
            data["version"],
            LivenessEstimate.parse(data["liveness"]),
            Box.parse(face) if face else None,
        )


@dataclass(frozen=True)
class SdkFace:
    box: Box
    landmarks: tuple[float, ...] = ()
    liveness: LivenessResult | None = None

    @classmethod
    def parse(cls, data: Json) -> SdkFace:
        liveness = data.get("liveness")
        return cls(
            Box.parse(data["box"]),
            tuple(data.get("landmarks") or ()),
            LivenessResult.parse(liveness) if liveness else None,
        )


@dataclass(frozen=True)
class Task:
    """A re-extraction task: its status and counts."""

    task_id: str
    version: int
    status: str
    total: int
    processed: int
    errors: int
    not_reextractable: int
    error: str | None = None

    @classmethod
    def parse(cls, data: Json) -> Task:
        return cls(
            str(data["task_id"]),
            int(data["version"]),
            str(data["status"]),
            int(data["total"]),
            int(data["processed"]),
            int(data["errors"]),
            int(data["not_reextractable"]),
            data.get("error"),
        )


# --- requests and responses ----------------------------------------------------------------------


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        return ApiError(response.status_code, str(body["error_code"]), str(body["desc"]))
    except (ValueError, KeyError, TypeError):
        # Not our JSON (a proxy's page, say): keep the status and what the body says.
        desc = response.text[:500] or response.reason_phrase
        return ApiError(response.status_code, "http_error", desc)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its successful answer."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]

    def result(self, response: httpx.Response) -> T:
        if response.is_error:
            raise _error(response)
        try:
            return self.parse(response)
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(
                response.status_code, "bad_response", f"the answer does not follow the API: {exc!r}"
            ) from exc


def _json(parse: Callable[[Json], T]) -> Callable[[httpx.Response], T]:
    return lambda response: parse(response.json())


def _no_content(response: httpx.Response) -> None:
    return None


def _faces(response: httpx.Response) -> list[Face]:
    return [Face.parse(f) for f in response.json()["faces"]]


def _flag(value: bool) -> int:
    return 1 if value else 0


def _params(**values: Any) -> list[tuple[str, Any]]:
    """Query parameters, unset ones left out; a sequence repeats its name (list_id=a&list_id=b)."""
    params: list[tuple[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, list | tuple):
            params.extend((name, item) for item in value)
        elif isinstance(value, datetime):
            params.append((name, value.isoformat()))
        elif value is not None:
            params.append((name, value))
    return params


class Endpoints:
    """Builds the request of every API operation and the parser of its answer; sends nothing."""

    def __init__(
        self, origin: str, account_id: str, timeout: float, admin_token: str | None = None
    ) -> None:
        self.origin = origin.rstrip("/")
        self.account_id = account_id
        self.timeout = timeout
        self.admin_token = admin_token

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Iterable[tuple[str, Any]] = (),
        json: Any = None,
        image: bytes | None = None,
        timeout: float | None = None,
    ) -> httpx.Request:
        headers = {ACCOUNT_HEADER: self.account_id, "Accept": "application/json"}
        if self.admin_token is not None:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        if image is not None:
            headers["Content-Type"] = "application/octet-stream"
        return httpx.Request(
            method,
            self.origin + path,
            params=list(params),
            headers=headers,
            content=image,
            json=json,
            extensions={"timeout": httpx.Timeout(timeout or self.timeout).as_dict()},
        )

    def health(self) -> Call[dict[str, Any]]:
        return Call(self._request("GET", "/v1/health"), lambda r: dict(r.json()))

    @overload
    def send_image(
        self,
        image: bytes,
        *,
        list_ids: Sequence[str] = (),
        source: str | None = None,
        wait: Literal[False] = False,
        timeout: float | None = None,
    ) -> Call[str]: ...
    @overload
    def send_image(
        self,
        image: bytes,
        *,
        list_ids: Sequence[str] = (),
        source: str | None = None,
        wait: Literal[True],
        timeout: float | None = None,
    ) -> Call[Event]: ...
    @overload
    def send_image(
        self,
        image: bytes,
        *,
        list_ids: Sequence[str] = (),
        source: str | None = None,
        wait: bool,
        timeout: float | None = None,
    ) -> Call[str | Event]: ...
    def send_image(
        self,
        image: bytes,
        *,
        list_ids: Sequence[str] = (),
        source: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Call[str] | Call[Event] | Call[str | Event]:
        """Sends an image into the pipeline: its event id, or with wait=True the finished Event
        (the server waits up to `timeout` seconds, then answers 504 `ApiError`)."""
        request = self._request(
            "POST",
            "/v1/images",
            params=_params(
                list_id=list(list_ids), source=source, wait=_flag(wait), timeout=timeout
            ),
            image=image,
            # The server may hold the answer for the whole wait: allow that on top of our own.
            timeout=self.timeout + (timeout or DEFAULT_WAIT) if wait else None,
        )
        if wait:
            return Call(request, _json(Event.parse))
        return Call(request, lambda r: str(r.json()["event_id"]))

    def get_event(self, event_id: str) -> Call[Event]:
        return Call(
            self._request("GET", f"/v1/events/{quote(event_id, safe='')}"), _json(Event.parse)
        )

    def list_events(
        self,
        *,
        created_from: datetime | str | None = None,
        created_to: datetime | str | None = None,
        list_id: str | None = None,
        similarity_gte: float | None = None,
        liveness_gte: float | None = None,
        status: Literal["ok", "error"] | None = None,
        error_code: str | None = None,
        page: int = 1,
        page_size: int = 100,
    ) -> Call[Page[Event]]:
        """A page of the account's events, newest first, filtered by whatever is given."""
        params = _params(
            created_from=created_from,
            created_to=created_to,
            list_id=list_id,
            similarity_gte=similarity_gte,
            liveness_gte=liveness_gte,
            status=status,
            error_code=error_code,
            page=page,
            page_size=page_size,
        )
        return Call(
            self._request("GET", "/v1/events", params=params),
            _json(lambda data: Page.parse(data, "events", Event.parse)),
        )

    def create_list(self, user_data: str | None = None) -> Call[str]:
        """Creates a list; its id."""
        body = {} if user_data is None else {"user_data": user_data}
        return Call(
            self._request("POST", "/v1/lists", json=body), lambda r: str(r.json()["list_id"])
        )

    def get_list(self, list_id: str) -> Call[FaceList]:
        return Call(self._request("GET", _list_path(list_id)), _json(FaceList.parse))

    def list_lists(self, *, page: int = 1, page_size: int = 100) -> Call[Page[FaceList]]:
        return Call(
            self._request("GET", "/v1/lists", params=_params(page=page, page_size=page_size)),
            _json(lambda data: Page.parse(data, "lists", FaceList.parse)),
        )

    def delete_list(self, list_id: str) -> Call[None]:
        """Deletes a list; its faces stay, unlinked."""
        return Call(self._request("DELETE", _list_path(list_id)), _no_content)

    def attach_faces(self, list_id: str, face_ids: Sequence[str]) -> Call[None]:
        return self._link(list_id, "attach", face_ids)

    def detach_faces(self, list_id: str, face_ids: Sequence[str]) -> Call[None]:
        return self._link(list_id, "detach", face_ids)

    def _link(self, list_id: str, action: str, face_ids: Sequence[str]) -> Call[None]:
        body = {"action": action, "face_ids": list(face_ids)}
        return Call(self._request("PATCH", _list_path(list_id) + "/faces", json=body), _no_content)

    def create_faces(
        self,
        image: bytes,
        *,
        list_ids: Sequence[str] = (),
        user_data: str | None = None,
        warped: bool = False,
        multi_face_allowed: bool = False,
        get_major_detection: bool = False,
        score_threshold: float | None = None,
        pitch_threshold: float | None = None,
        roll_threshold: float | None = None,
        yaw_threshold: float | None = None,
    ) -> Call[list[Face]]:
        """Creates a face from each face in the image that passes the options (one unless
        multi_face_allowed)."""
        params = _params(
            list_id=list(list_ids),
            user_data=user_data,
            warped=_flag(warped),
            multi_face_allowed=_flag(multi_face_allowed),
            get_major_detection=_flag(get_major_detection),
            score_threshold=score_threshold,
            pitch_threshold=pitch_threshold,
            roll_threshold=roll_threshold,
            yaw_threshold=yaw_threshold,
        )
        return Call(self._request("POST", "/v1/faces", params=params, image=image), _faces)

    def create_face_from_event(
        self,
        event_id: str,
        face_index: int = 0,
        *,
        user_data: str | None = None,
        list_ids: Sequence[str] = (),
    ) -> Call[Face]:
        """Creates a face with the descriptor and sample of an event's face."""
        body: dict[str, Any] = {"event_id": event_id, "face_index": face_index}
        if user_data is not None:
            body["user_data"] = user_data
        if list_ids:
            body["list_ids"] = list(list_ids)
        return Call(self._request("POST", "/v1/faces", json=body), lambda r: _faces(r)[0])

    def get_face(self, face_id: str) -> Call[Face]:
        return Call(self._request("GET", _face_path(face_id)), _json(Face.parse))

    def delete_face(self, face_id: str) -> Call[None]:
        return Call(self._request("DELETE", _face_path(face_id)), _no_content)

    def start_reextraction(
        self, version: int, task_id: str | None = None, lanes: int | None = None
    ) -> Call[Task]:
        """Re-extract every stored sample with `version`; the same task_id resumes a task.
        `lanes`: extractions side by side (default: one per core of the API's machine)."""
        body: dict[str, Any] = {"version": version}
        body |= {"task_id": task_id} if task_id else {}
        body |= {"lanes": lanes} if lanes else {}
        return Call(self._request("POST", "/v1/tasks/reextract", json=body), _json(Task.parse))

    def list_tasks(self) -> Call[list[Task]]:
        """The tasks the API process started, oldest first."""
        return Call(
            self._request("GET", "/v1/tasks"),
            _json(lambda data: [Task.parse(task) for task in data["tasks"]]),
        )

    def get_task(self, task_id: str) -> Call[Task]:
        return Call(self._request("GET", _task_path(task_id)), _json(Task.parse))

    def stop_task(self, task_id: str) -> Call[Task]:
        return Call(self._request("POST", f"{_task_path(task_id)}/stop"), _json(Task.parse))

    def task_log(self, task_id: str) -> Call[list[dict[str, Any]]]:
        """Every sample the task processed or refused: one dict each."""
        return Call(self._request("GET", f"{_task_path(task_id)}/log"), _ndjson)

    def match(
        self,
        references: Sequence[Reference],
        candidates: Candidates,
        *,
        limit: int = 3,
        threshold: float | None = None,
    ) -> Call[list[MatchResult]]:
        """The best `limit` candidates of each reference, in the order of the references."""
        body: dict[str, Any] = {
            "references": [r.to_json() for r in references],
            "candidates": candidates.to_json(),
            "limit": limit,
        }
        if threshold is not None:
            body["threshold"] = threshold
        return Call(
            self._request("POST", "/v1/matcher/faces", json=body),
            lambda r: [MatchResult.parse(m) for m in r.json()["results"]],
        )

    def liveness(
        self, image: bytes, os: Literal["IOS", "ANDROID", "DESKTOP", "UNKNOWN"] | None = None
    ) -> Call[LivenessResult]:
        """Liveness of the one face in the image; `os` is the capturing device's (Liveness V1)."""
        request = self._request("POST", "/v1/liveness", params=_params(OS=os), image=image)
        return Call(request, _json(LivenessResult.parse))

    def sdk(self, image: bytes, estimate_liveness: bool = False) -> Call[list[SdkFace]]:
        """Detects the faces of the image and, with estimate_liveness, their liveness (V2)."""
        params = _params(estimate_liveness=_flag(estimate_liveness))
        return Call(
            self._request("POST", "/v1/sdk", params=params, image=image),
            lambda r: [SdkFace.parse(f) for f in r.json()["faces"]],
        )


def _list_path(list_id: str) -> str:
    return f"/v1/lists/{quote(list_id, safe='')}"


def _task_path(task_id: str) -> str:
    return f"/v1/tasks/{quote(task_id, safe='')}"


def _ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def _face_path(face_id: str) -> str:
    return f"/v1/faces/{quote(face_id, safe='')}"


# --- the two clients: each operation is Endpoints' builder, then send and parse ------------------


def _sync(
    build: Callable[Concatenate[Endpoints, P], Call[T]],
) -> Callable[Concatenate[Client, P], T]:
    @functools.wraps(build)
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = build(self.endpoints, *args, **kwargs)
        try:
            response = self.http.send(call.request)
        except httpx.TransportError as exc:
            raise ApiConnectionError.wrap(exc) from exc
        return call.result(response)

    return method


def _async(
    build: Callable[Concatenate[Endpoints, P], Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    @functools.wraps(build)
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = build(self.endpoints, *args, **kwargs)
        try:
            response = await self.http.send(call.request)
        except httpx.TransportError as exc:
            raise ApiConnectionError.wrap(exc) from exc
        return call.result(response)

    return method


class Client:
    """The API over blocking HTTP; a context manager that closes its connections."""

    def __init__(
        self,
        origin: str = DEFAULT_ORIGIN,
        *,
        account_id: str,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.endpoints = Endpoints(origin, account_id, timeout, admin_token)
        self.http = httpx.Client(transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    health = _sync(Endpoints.health)
    send_image = _sync(Endpoints.send_image)
    get_event = _sync(Endpoints.get_event)
    list_events = _sync(Endpoints.list_events)
    create_list = _sync(Endpoints.create_list)
    get_list = _sync(Endpoints.get_list)
    list_lists = _sync(Endpoints.list_lists)
    delete_list = _sync(Endpoints.delete_list)
    attach_faces = _sync(Endpoints.attach_faces)
    detach_faces = _sync(Endpoints.detach_faces)
    create_faces = _sync(Endpoints.create_faces)
    create_face_from_event = _sync(Endpoints.create_face_from_event)
    get_face = _sync(Endpoints.get_face)
    delete_face = _sync(Endpoints.delete_face)
    match = _sync(Endpoints.match)
    liveness = _sync(Endpoints.liveness)
    sdk = _sync(Endpoints.sdk)
    start_reextraction = _sync(Endpoints.start_reextraction)
    list_tasks = _sync(Endpoints.list_tasks)
    get_task = _sync(Endpoints.get_task)
    stop_task = _sync(Endpoints.stop_task)
    task_log = _sync(Endpoints.task_log)


class AsyncClient:
    """The API over asyncio HTTP; an async context manager that closes its connections."""

    def __init__(
        self,
        origin: str = DEFAULT_ORIGIN,
        *,
        account_id: str,
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.endpoints = Endpoints(origin, account_id, timeout, admin_token)
        self.http = httpx.AsyncClient(transport=transport)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    health = _async(Endpoints.health)
    send_image = _async(Endpoints.send_image)
    get_event = _async(Endpoints.get_event)
    list_events = _async(Endpoints.list_events)
    create_list = _async(Endpoints.create_list)
    get_list = _async(Endpoints.get_list)
    list_lists = _async(Endpoints.list_lists)
    delete_list = _async(Endpoints.delete_list)
    attach_faces = _async(Endpoints.attach_faces)
    detach_faces = _async(Endpoints.detach_faces)
    create_faces = _async(Endpoints.create_faces)
    create_face_from_event = _async(Endpoints.create_face_from_event)
    get_face = _async(Endpoints.get_face)
    delete_face = _async(Endpoints.delete_face)
    match = _async(Endpoints.match)
    liveness = _async(Endpoints.liveness)
    sdk = _async(Endpoints.sdk)
    start_reextraction = _async(Endpoints.start_reextraction)
    list_tasks = _async(Endpoints.list_tasks)
    get_task = _async(Endpoints.get_task)
    stop_task = _async(Endpoints.stop_task)
    task_log = _async(Endpoints.task_log)
