"""A typed Python client for the facestream HTTP API (`/v1/openapi.yml`), sync and async.

Enroll a person, then recognise them::

    from pathlib import Path

    from streams.client.http import Candidates, Client, Reference

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
came. One `Endpoints` object builds each request and parses its response with the server's own
models (streams.api.shapes); the two clients only send.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Self, TypeVar, overload
from urllib.parse import quote, urlencode

import httpx
import websockets
from pydantic import BaseModel, ValidationError

from streams.api.shapes import (
    Accepted,
    Box,
    Candidates,
    DescriptorIn,
    Event,
    EventFace,
    EventPage,
    EventsSocketQuery,
    Face,
    FaceDescriptor,
    FaceFromDescriptors,
    FaceFromEvent,
    FaceList,
    FaceLiveness,
    Faces,
    Health,
    LinkFaces,
    ListCreated,
    ListPage,
    LivenessEstimate,
    LivenessResult,
    Match,
    MatchRequest,
    MatchResult,
    MatchResults,
    NewList,
    Reextract,
    Reference,
    SdkFace,
    SdkFaces,
    Task,
    Tasks,
    refused,
)

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AsyncClient",
    "Box",
    "Candidates",
    "Client",
    "Event",
    "EventFace",
    "Face",
    "FaceDescriptor",
    "FaceList",
    "FaceLiveness",
    "LivenessEstimate",
    "LivenessResult",
    "Match",
    "MatchResult",
    "Page",
    "Reference",
    "SdkFace",
    "Task",
]

DEFAULT_ORIGIN = "http://127.0.0.1:5000"
ACCOUNT_HEADER = "Luna-Account-Id"
# The server holds a wait=1 request up to this many seconds when no timeout is given.
DEFAULT_WAIT = 30.0

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
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


# --- results: the server's own shapes (streams.api.shapes), and a page of them ----------------


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    page: int
    page_size: int
    total: int


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


def _shape(model: type[M]) -> Callable[[httpx.Response], M]:
    """The answer as the server's model (a pydantic ValidationError is a ValueError)."""
    return lambda response: model.model_validate_json(response.content)


def _no_content(response: httpx.Response) -> None:
    return None


def _faces(response: httpx.Response) -> list[Face]:
    return list(_shape(Faces)(response).faces)


def _body(shape: type[BaseModel], **values: Any) -> dict[str, Any]:
    """A request body as the server's model validates it, unset options left out. What the
    server would refuse is refused here, as the same 400 with the same code, unsent."""
    try:
        body = shape(**values)
    except ValidationError as exc:
        raise ApiError(400, *refused(shape, exc)) from None
    return body.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def _flag(value: bool) -> int:
    return 1 if value else 0


def _ids(given: str | Sequence[str]) -> list[str]:
    """One id or several, as a repeatable parameter takes them."""
    return [given] if isinstance(given, str) else list(given)


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
        return Call(
            self._request("GET", "/v1/health"),
            lambda r: _shape(Health)(r).model_dump(mode="json", exclude_none=True),
        )

    @overload
    def send_image(
        self,
        image: bytes,
        *,
        list_ids: Sequence[str] = (),
        source: str | None = None,
        min_quality: float | None = None,
        estimate_liveness: bool | None = None,
        estimate_basic_attributes: bool | None = None,
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
        min_quality: float | None = None,
        estimate_liveness: bool | None = None,
        estimate_basic_attributes: bool | None = None,
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
        min_quality: float | None = None,
        estimate_liveness: bool | None = None,
        estimate_basic_attributes: bool | None = None,
        wait: bool,
        timeout: float | None = None,
    ) -> Call[str | Event]: ...
    def send_image(
        self,
        image: bytes,
        *,
        list_ids: Sequence[str] = (),
        source: str | None = None,
        min_quality: float | None = None,
        estimate_liveness: bool | None = None,
        estimate_basic_attributes: bool | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Call[str] | Call[Event] | Call[str | Event]:
        """Sends an image into the pipeline: its event id, or with wait=True the finished Event
        (the server waits up to `timeout` seconds, then answers 504 `ApiError`). Faces under
        `min_quality` (processors.quality) are refused: the event is an error, low_quality.
        `estimate_liveness`: True asks for liveness (403 when the licence forbids it), False
        asks for none, None leaves it to the licence. `estimate_basic_attributes` likewise
        (None: the deployment's attributes.estimate)."""
        request = self._request(
            "POST",
            "/v1/images",
            params=_params(
                list_id=list(list_ids),
                source=source,
                min_quality=min_quality,
                estimate_liveness=None if estimate_liveness is None else _flag(estimate_liveness),
                estimate_basic_attributes=(
                    None if estimate_basic_attributes is None else _flag(estimate_basic_attributes)
                ),
                wait=_flag(wait),
                timeout=timeout,
            ),
            image=image,
            # The server may hold the answer for the whole wait: allow that on top of our own.
            timeout=self.timeout + (timeout or DEFAULT_WAIT) if wait else None,
        )
        if wait:
            return Call(request, _shape(Event))
        return Call(request, lambda r: _shape(Accepted)(r).event_id)

    def get_event(self, event_id: str) -> Call[Event]:
        return Call(self._request("GET", f"/v1/events/{quote(event_id, safe='')}"), _shape(Event))

    def list_events(
        self,
        *,
        created_from: datetime | str | None = None,
        created_to: datetime | str | None = None,
        list_id: str | Sequence[str] = (),
        similarity_gte: float | None = None,
        liveness_gte: float | None = None,
        status: Literal["ok", "error"] | None = None,
        error_code: str | None = None,
        age_gte: float | None = None,
        age_lte: float | None = None,
        gender: Literal["male", "female"] | None = None,
        page: int = 1,
        page_size: int = 100,
    ) -> Call[Page[Event]]:
        """A page of the account's events, newest first, filtered by whatever is given (an age
        range and a gender select events with one face meeting them all)."""
        params = _params(
            created_from=created_from,
            created_to=created_to,
            list_id=_ids(list_id),
            similarity_gte=similarity_gte,
            liveness_gte=liveness_gte,
            status=status,
            error_code=error_code,
            age_gte=age_gte,
            age_lte=age_lte,
            gender=gender,
            page=page,
            page_size=page_size,
        )

        def parse(response: httpx.Response) -> Page[Event]:
            found = _shape(EventPage)(response)
            return Page(found.events, found.page, found.page_size, found.total)

        return Call(self._request("GET", "/v1/events", params=params), parse)

    def create_list(self, user_data: str | None = None) -> Call[str]:
        """Creates a list; its id."""
        body = _body(NewList, user_data=user_data)
        return Call(
            self._request("POST", "/v1/lists", json=body),
            lambda r: _shape(ListCreated)(r).list_id,
        )

    def get_list(self, list_id: str) -> Call[FaceList]:
        return Call(self._request("GET", _list_path(list_id)), _shape(FaceList))

    def list_lists(self, *, page: int = 1, page_size: int = 100) -> Call[Page[FaceList]]:
        def parse(response: httpx.Response) -> Page[FaceList]:
            found = _shape(ListPage)(response)
            return Page(found.lists, found.page, found.page_size, found.total)

        params = _params(page=page, page_size=page_size)
        return Call(self._request("GET", "/v1/lists", params=params), parse)

    def delete_list(self, list_id: str) -> Call[None]:
        """Deletes a list; its faces stay, unlinked."""
        return Call(self._request("DELETE", _list_path(list_id)), _no_content)

    def attach_faces(self, list_id: str, face_ids: Sequence[str]) -> Call[None]:
        return self._link(list_id, "attach", face_ids)

    def detach_faces(self, list_id: str, face_ids: Sequence[str]) -> Call[None]:
        return self._link(list_id, "detach", face_ids)

    def _link(
        self, list_id: str, action: Literal["attach", "detach"], face_ids: Sequence[str]
    ) -> Call[None]:
        body = _body(LinkFaces, action=action, face_ids=list(face_ids))
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
        descriptor: bool = True,
        score_threshold: float | None = None,
        pitch_threshold: float | None = None,
        roll_threshold: float | None = None,
        yaw_threshold: float | None = None,
        basic_attr: bool = False,
        avatar: bool = False,
    ) -> Call[list[Face]]:
        """Creates a face from each face in the image that passes the options (one unless
        multi_face_allowed). Without a descriptor a face matches nothing until a
        re-extraction gives it one. With basic_attr each face keeps its age, gender and
        expressions; with avatar its sample is also its avatar."""
        params = _params(
            list_id=list(list_ids),
            user_data=user_data,
            warped=_flag(warped),
            multi_face_allowed=_flag(multi_face_allowed),
            get_major_detection=_flag(get_major_detection),
            descriptor=None if descriptor else 0,
            score_threshold=score_threshold,
            pitch_threshold=pitch_threshold,
            roll_threshold=roll_threshold,
            yaw_threshold=yaw_threshold,
            basic_attr=1 if basic_attr else None,
            avatar=1 if avatar else None,
        )
        return Call(self._request("POST", "/v1/faces", params=params, image=image), _faces)

    def get_sample(self, sample_id: str) -> Call[bytes]:
        """A face sample's JPEG."""
        path = f"/v1/samples/{quote(sample_id, safe='')}"
        return Call(self._request("GET", path), lambda r: r.content)

    def get_avatar(self, face_id: str) -> Call[bytes]:
        """A face's avatar, JPEG."""
        return Call(self._request("GET", f"{_face_path(face_id)}/avatar"), lambda r: r.content)

    def set_avatar(self, face_id: str, image: bytes) -> Call[Face]:
        """Makes the image (any format the API reads) the face's avatar."""
        path = f"{_face_path(face_id)}/avatar"
        return Call(self._request("PUT", path, image=image), _shape(Face))

    def create_face_from_event(
        self,
        event_id: str,
        face_index: int = 0,
        *,
        user_data: str | None = None,
        list_ids: Sequence[str] = (),
    ) -> Call[Face]:
        """Creates a face with the descriptor and sample of an event's face."""
        body = _body(
            FaceFromEvent,
            event_id=event_id,
            face_index=face_index,
            user_data=user_data,
            list_ids=list(list_ids) or None,
        ) | {"face_index": face_index}  # always said, though the default
        return Call(self._request("POST", "/v1/faces", json=body), lambda r: _faces(r)[0])

    def create_face_from_descriptors(
        self,
        descriptors: Mapping[int, bytes],
        *,
        user_data: str | None = None,
        list_ids: Sequence[str] = (),
    ) -> Call[Face]:
        """Creates a face from descriptors alone (version -> little-endian float32 bytes), such
        as another deployment's `list_descriptors` gives; without a sample it cannot be
        re-extracted."""
        body = _body(
            FaceFromDescriptors,
            descriptors=[
                DescriptorIn(version=v, vector=base64.b64encode(b).decode())
                for v, b in descriptors.items()
            ],
            user_data=user_data,
            list_ids=list(list_ids) or None,
        )
        return Call(self._request("POST", "/v1/faces", json=body), lambda r: _faces(r)[0])

    def list_descriptors(self, list_id: str) -> Call[list[FaceDescriptor]]:
        """Every descriptor of the list's faces (a line each on the wire), to move the gallery
        to another deployment with `create_face_from_descriptors`."""

        def parse(response: httpx.Response) -> list[FaceDescriptor]:
            return [
                FaceDescriptor.model_validate_json(line)
                for line in response.content.splitlines()
                if line
            ]

        return Call(self._request("GET", f"{_list_path(list_id)}/descriptors"), parse)

    def get_face(self, face_id: str) -> Call[Face]:
        return Call(self._request("GET", _face_path(face_id)), _shape(Face))

    def delete_face(self, face_id: str) -> Call[None]:
        return Call(self._request("DELETE", _face_path(face_id)), _no_content)

    def start_reextraction(
        self, version: int, task_id: str | None = None, lanes: int | None = None
    ) -> Call[Task]:
        """Re-extract every stored sample with `version`; the same task_id resumes a task.
        `lanes`: extractions side by side (default: one per core of the API's machine)."""
        body = _body(Reextract, version=version, task_id=task_id or None, lanes=lanes or None)
        return Call(self._request("POST", "/v1/tasks/reextract", json=body), _shape(Task))

    def list_tasks(self) -> Call[list[Task]]:
        """The tasks the API process started, oldest first."""
        return Call(self._request("GET", "/v1/tasks"), lambda r: list(_shape(Tasks)(r).tasks))

    def get_task(self, task_id: str) -> Call[Task]:
        return Call(self._request("GET", _task_path(task_id)), _shape(Task))

    def stop_task(self, task_id: str) -> Call[Task]:
        return Call(self._request("POST", f"{_task_path(task_id)}/stop"), _shape(Task))

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
        body = _body(
            MatchRequest,
            references=list(references),
            candidates=candidates,
            limit=limit,
            threshold=threshold,
        ) | {"references": [r.to_json() for r in references], "limit": limit}
        return Call(
            self._request("POST", "/v1/matcher/faces", json=body),
            lambda r: list(_shape(MatchResults)(r).results),
        )

    def liveness(
        self, image: bytes, os: Literal["IOS", "ANDROID", "DESKTOP", "UNKNOWN"] | None = None
    ) -> Call[LivenessResult]:
        """Liveness of the one face in the image; `os` is the capturing device's (Liveness V1)."""
        request = self._request("POST", "/v1/liveness", params=_params(OS=os), image=image)
        return Call(request, _shape(LivenessResult))

    def sdk(
        self, image: bytes, estimate_liveness: bool = False, estimate_basic_attributes: bool = False
    ) -> Call[list[SdkFace]]:
        """Detects the faces of the image and, with estimate_liveness, their liveness (V2); with
        estimate_basic_attributes, their age, gender and expressions."""
        params = _params(
            estimate_liveness=_flag(estimate_liveness),
            estimate_basic_attributes=1 if estimate_basic_attributes else None,
        )
        return Call(
            self._request("POST", "/v1/sdk", params=params, image=image),
            lambda r: list(_shape(SdkFaces)(r).faces),
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
    get_sample = _sync(Endpoints.get_sample)
    get_avatar = _sync(Endpoints.get_avatar)
    set_avatar = _sync(Endpoints.set_avatar)
    create_face_from_descriptors = _sync(Endpoints.create_face_from_descriptors)
    list_descriptors = _sync(Endpoints.list_descriptors)
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

    async def events(
        self,
        *,
        list_id: str | Sequence[str] = (),
        similarity_gte: float | None = None,
        liveness_gte: float | None = None,
        status: Literal["ok", "error"] | None = None,
        error_code: str | None = None,
        age_gte: float | None = None,
        age_lte: float | None = None,
        gender: Literal["male", "female"] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """The account's events as they are stored (GET /v1/ws/events), filtered as
        list_events filters, for as long as the caller reads. A refused subscription, or one
        dropped for falling behind (`subscriber_too_slow`: reconnect, and read the gap with
        list_events), is an ApiError with status 0 and the server's code."""
        filters = EventsSocketQuery(
            list_id=_ids(list_id),
            similarity_gte=similarity_gte,
            liveness_gte=liveness_gte,
            status=status,
            error_code=error_code,
            age_gte=age_gte,
            age_lte=age_lte,
            gender=gender,
        )
        origin = self.endpoints.origin.replace("http", "ws", 1)  # http -> ws, https -> wss
        query = urlencode(filters.model_dump(exclude_none=True), doseq=True)
        headers = {ACCOUNT_HEADER: self.endpoints.account_id}
        async with websockets.connect(
            f"{origin}/v1/ws/events?{query}", additional_headers=headers
        ) as socket:
            async for message in socket:
                data = json.loads(message)
                if "event_id" in data:
                    yield Event.model_validate(data)
                elif "subscribed" not in data:  # the server's error body, then its close
                    raise ApiError(0, data.get("error_code", "bad_message"), data.get("desc", ""))

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
    get_sample = _async(Endpoints.get_sample)
    get_avatar = _async(Endpoints.get_avatar)
    set_avatar = _async(Endpoints.set_avatar)
    create_face_from_descriptors = _async(Endpoints.create_face_from_descriptors)
    list_descriptors = _async(Endpoints.list_descriptors)
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
