"""Every JSON shape of the HTTP API, written once: the server validates requests and serialises
responses with these models, the OpenAPI document is generated from them (streams.api.spec),
and the client (streams.client.http) builds requests and parses answers with them.

Request bodies are strict (`true` is no integer, `1.0` no face index); query parameters arrive
as strings and are converted. A refused field answers 400 with the error code of the innermost
field or model that declares one (`Code`), so each mistake keeps the code it always had.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.config import JsonDict

from processors.registry import DESCRIPTOR_VERSIONS

USER_DATA_MAX = 128
MAX_FACE_INDEX = 65535  # the tables' UInt16
MAX_LANES = 64  # streams.worker.replay checks the same bound (tests/unit/test_openapi.py)
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # names files and consumer groups
OS_VALUES = ("IOS", "ANDROID", "DESKTOP", "UNKNOWN")
EXAMPLE_ID = "0b0e8c7a-5b6e-4a43-9a7e-1f4d7b1c2a10"
EXAMPLE_TIME = "2024-05-01T12:00:00Z"


def examples(*values: Any) -> JsonDict:
    """The examples of a shape, shown in the OpenAPI document beside its schema."""
    return {"examples": list(values)}


class Code:
    """The error code a refused field (or anything inside it) answers with."""

    def __init__(self, code: str) -> None:
        self.code = code


class Shape(BaseModel):
    """A response shape: immutable where the client holds it; unknown keys are ignored so that a
    newer server's additions do not break an older client."""

    model_config = ConfigDict(frozen=True)


class Body(BaseModel):
    """A JSON request body: strict types, unknown keys ignored (as they always were)."""

    model_config = ConfigDict(strict=True, frozen=True)
    refusal_code: ClassVar[str] = "bad_json"


class Query(BaseModel):
    """Query parameters: strings converted; unknown ones ignored."""

    model_config = ConfigDict(frozen=True)
    refusal_code: ClassVar[str] = "bad_parameter"


def _flag(value: Any) -> Any:
    return {"0": False, "1": True}.get(value, value) if isinstance(value, str) else value


# A 0/1 query flag ("true" or "yes" are refused: LUNA's clients send 0 or 1).
Flag = Annotated[
    bool,
    BeforeValidator(_flag),
    Field(strict=True),
    WithJsonSchema({"type": "integer", "enum": [0, 1]}),
]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Angle = Annotated[float, Field(ge=0, le=180, allow_inf_nan=False)]
UserData = Annotated[str, Field(max_length=USER_DATA_MAX), Code("bad_user_data")]
TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN), Code("bad_task_id")]


# --- shared pieces -------------------------------------------------------------------------------


class Error(Shape):
    """Every error: a stable machine-readable code and a sentence for a person."""

    error_code: str = Field(description="stable machine-readable code, snake_case")
    desc: str = Field(description="what went wrong, for a person")
    model_config = ConfigDict(
        json_schema_extra=examples({"error_code": "list_not_found", "desc": "list x ..."})
    )


class Box(Shape):
    x: float = Field(description="left edge, pixels")
    y: float = Field(description="top edge, pixels")
    width: float
    height: float
    score: float = Field(description="detection score [0..1]")


BOX = {"x": 10.0, "y": 20.0, "width": 100.0, "height": 120.0, "score": 0.99}


class Match(Shape):
    face_id: str
    similarity: float = Field(description="cosine similarity of the descriptors")
    user_data: str | None = None


MATCH = {"face_id": EXAMPLE_ID, "similarity": 0.82, "user_data": "alice"}


class Page(Query):
    page: int = Field(1, ge=1, le=1_000_000, description="1-based page number")
    page_size: int = Field(100, ge=1, le=1000)


# --- health and settings -------------------------------------------------------------------------


class Health(Shape):
    status: Literal["ok"]
    faces: int | None = Field(None, description="every account's faces (administrator only)")
    lists: int | None = Field(None, description="every account's lists (administrator only)")
    runtime_providers: tuple[str, ...] = Field(
        (),
        description="onnxruntime's execution providers here, the preferred first "
        "(administrator only)",
    )
    models: dict[str, str] = Field(
        {},
        description="the provider each model file this process opened runs on, once used "
        "(administrator only)",
    )
    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "status": "ok",
                "faces": 12,
                "lists": 2,
                "runtime_providers": ["CPUExecutionProvider"],
                "models": {"yunet_2023mar.onnx": "CPUExecutionProvider"},
            }
        )
    )


class SettingsView(Shape):
    """One object per section (streams.settings), secrets shown as "***"."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra=examples({"match": {"limit": 3}, "api": {"admin_token": "***"}}),
    )


# --- images and events ---------------------------------------------------------------------------


class ImagesQuery(Query):
    list_id: list[str] = Field([], description="lists to match against (repeatable)")
    source: str | None = Field(None, description="where the image comes from, e.g. a camera")
    min_quality: Fraction | None = Field(
        None,
        description="lowest face quality (processors.quality) kept, over the deployment's "
        "detection.min_quality; an image with no face reaching it ends as an error event, "
        "low_quality",
    )
    estimate_liveness: Flag | None = Field(
        None,
        description="1: estimate liveness (403 when the licence forbids it in the pipeline: only "
        "Liveness V2 serves it); 0: none; unset: when the licence allows it",
    )
    estimate_basic_attributes: Flag | None = Field(
        None,
        description="1: estimate each face's age, gender and expression; 0: none; unset: as "
        "the deployment's attributes.estimate says",
    )
    wait: Flag = Field(False, description="1: answer with the finished event")
    timeout: float | None = Field(
        None, ge=0.1, le=300, allow_inf_nan=False, description="seconds to wait (api setting)"
    )


class Accepted(Shape):
    event_id: str
    model_config = ConfigDict(json_schema_extra=examples({"event_id": EXAMPLE_ID}))


class BasicAttributes(Shape):
    """Age, gender and expression of one face (face-api's nets, processors.attributes)."""

    age: float = Field(description="years")
    gender: Literal["male", "female"]
    gender_probability: float = Field(ge=0, le=1, description="of `gender`")
    expressions: dict[str, float] = Field(
        description="neutral, happy, sad, angry, fearful, disgusted, surprised: probabilities "
        "summing to 1"
    )


class FaceLiveness(Shape):
    probability: float = Field(description="[0..1], 1 = live person")
    quality: float = Field(description="[0..1], 1 = good image quality")


class EventFace(Shape):
    index: int
    box: Box
    sample_id: str | None = None
    liveness: FaceLiveness | None = None
    basic_attributes: BasicAttributes | None = Field(
        None, description="when estimated (attributes.estimate, or the image asked)"
    )
    matches: tuple[Match, ...] = Field((), description="best first, above the threshold")


EVENT = {
    "event_id": EXAMPLE_ID,
    "account_id": "6d071cca-fda5-4a03-84d5-5bea65904480",
    "source": "door",
    "created_at": EXAMPLE_TIME,
    "finished_at": "2024-05-01T12:00:01Z",
    "status": "ok",
    "error_code": None,
    "error_message": None,
    "list_ids": [EXAMPLE_ID],
    "descriptor_version": 1,
    "faces": [
        {
            "index": 0,
            "box": BOX,
            "sample_id": EXAMPLE_ID,
            "liveness": {"probability": 0.97, "quality": 0.8},
            "matches": [MATCH],
        }
    ],
}


class Event(Shape):
    model_config = ConfigDict(json_schema_extra=examples(EVENT))
    event_id: str
    account_id: str
    source: str | None = None
    created_at: datetime
    finished_at: datetime
    status: Literal["ok", "error"]
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


def _time(value: Any) -> Any:
    """An ISO 8601 time within ClickHouse DateTime's years; naive means UTC."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"an ISO 8601 time, not {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # an offset pushing year 1 or 9999 out of range
        moment = datetime.min.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 2105:
        raise ValueError("a time within the years 1970 to 2105")
    return moment


Time = Annotated[
    datetime, BeforeValidator(_time), WithJsonSchema({"type": "string", "format": "date-time"})
]


class EventFilters(Query):
    """What selects events, listed (GET /v1/events) or pushed (GET /v1/ws/events)."""

    list_id: list[str] = Field(
        [], description="events matched against any of these lists (repeatable)"
    )
    similarity_gte: float | None = Field(
        None, ge=-1, le=1, allow_inf_nan=False, description="best match similarity at least this"
    )
    liveness_gte: Fraction | None = Field(
        None, description="every face's liveness probability at least this"
    )
    status: Literal["ok", "error"] | None = None
    error_code: str | None = None
    age_gte: float | None = Field(
        None, ge=0, le=200, allow_inf_nan=False, description="a face at least this old (years)"
    )
    age_lte: float | None = Field(
        None, ge=0, le=200, allow_inf_nan=False, description="a face at most this old (years)"
    )
    gender: Literal["male", "female"] | None = Field(
        None, description="a face of this gender; with an age range, the same face"
    )


class EventsQuery(Page, EventFilters):
    created_from: Time | None = Field(None, description="ISO 8601; naive means UTC")
    created_to: Time | None = None


class EventsSocketQuery(EventFilters):
    account_id: str | None = Field(
        None,
        description="the account, for clients that cannot set the Luna-Account-Id header on "
        "a WebSocket (browsers); the header wins",
    )


class EventPage(Shape):
    events: tuple[Event, ...]
    page: int
    page_size: int
    total: int
    model_config = ConfigDict(
        json_schema_extra=examples({"events": [EVENT], "page": 1, "page_size": 100, "total": 1})
    )


# --- lists ---------------------------------------------------------------------------------------


class FaceDescriptor(Shape):
    """One line of GET /v1/lists/{id}/descriptors: one descriptor of one face."""

    face_id: str
    user_data: str | None = None
    version: int = Field(description="descriptor version (1 SFace, 2 dlib ResNet)")
    vector: str = Field(description="base64 of the little-endian float32 values")


class NewList(Body):
    user_data: UserData | None = None
    model_config = ConfigDict(json_schema_extra=examples({"user_data": "staff"}))


class ListCreated(Shape):
    list_id: str
    model_config = ConfigDict(json_schema_extra=examples({"list_id": EXAMPLE_ID}))


LIST = {"list_id": EXAMPLE_ID, "user_data": "staff", "created_at": EXAMPLE_TIME, "face_count": 5}


class FaceList(Shape):
    model_config = ConfigDict(json_schema_extra=examples(LIST))
    list_id: str
    created_at: datetime
    user_data: str | None = None
    face_count: int = Field(description="faces linked to the list now")


class ListPage(Shape):
    lists: tuple[FaceList, ...]
    page: int
    page_size: int
    total: int
    model_config = ConfigDict(
        json_schema_extra=examples({"lists": [LIST], "page": 1, "page_size": 100, "total": 1})
    )


class LinkFaces(Body):
    action: Annotated[Literal["attach", "detach"], Code("bad_action")]
    face_ids: Annotated[list[str], Field(min_length=1, max_length=1000), Code("bad_face_ids")]
    model_config = ConfigDict(
        json_schema_extra=examples({"action": "attach", "face_ids": [EXAMPLE_ID]})
    )


# --- faces ---------------------------------------------------------------------------------------


class FacesQuery(Query):
    list_id: list[str] = Field([], description="lists to link (repeatable)")
    user_data: UserData | None = None
    warped: Flag = Field(False, description="the image is already a 250x250 aligned sample")
    multi_face_allowed: Flag = Field(False, description="every face becomes a face, not one")
    get_major_detection: Flag = Field(False, description="with several faces, keep the largest")
    avatar: Flag = Field(False, description="1: the face's sample is also its avatar")
    descriptor: Flag = Field(
        True,
        description="0: the face keeps its sample but gets no descriptor, so it matches "
        "nothing until a re-extraction (POST /v1/tasks/reextract) gives it one",
    )
    score_threshold: Fraction = Field(
        0.0, description="lowest face quality (processors.quality) kept; below is low_quality"
    )
    pitch_threshold: Angle | None = Field(None, description="largest |pitch|, degrees")
    roll_threshold: Angle | None = Field(None, description="largest |roll|, degrees")
    yaw_threshold: Angle | None = Field(None, description="largest |yaw|, degrees")
    basic_attr: Flag = Field(
        False,
        description="1: the face keeps its age, gender and expressions (from the image's face; "
        "a warped sample's face region when warped=1)",
    )


class DescriptorIn(Body):
    version: int = Field(description="descriptor version (1 SFace, 2 dlib ResNet)")
    vector: str = Field(description="base64 of its little-endian float32 values")


class FaceFromDescriptors(Body):
    """A face from descriptors alone (another deployment's, GET /v1/lists/{id}/descriptors):
    no photo, no sample, so a re-extraction cannot give it another version."""

    refusal_code: ClassVar[str] = "bad_face_source"
    descriptors: list[DescriptorIn] = Field(min_length=1, max_length=8)
    user_data: UserData | None = None
    list_ids: Annotated[list[str] | None, Code("bad_list_ids")] = None
    model_config = ConfigDict(
        json_schema_extra=examples(
            {"descriptors": [{"version": 1, "vector": "AAAAAA..."}], "user_data": "alice"}
        )
    )

    @model_validator(mode="after")
    def _one_per_version(self) -> Self:
        versions = [d.version for d in self.descriptors]
        if len(set(versions)) != len(versions):
            raise ValueError(f"one descriptor per version, got versions {versions}")
        return self


class FaceFromEvent(Body):
    """A face with the descriptors and sample of an event's face."""

    refusal_code: ClassVar[str] = "bad_face_source"
    event_id: str
    face_index: int = Field(0, ge=0, le=MAX_FACE_INDEX, description="the event's face")
    user_data: UserData | None = None
    list_ids: Annotated[list[str] | None, Code("bad_list_ids")] = None
    model_config = ConfigDict(json_schema_extra=examples({"event_id": EXAMPLE_ID, "face_index": 0}))


FACE = {
    "face_id": EXAMPLE_ID,
    "account_id": "6d071cca-fda5-4a03-84d5-5bea65904480",
    "created_at": EXAMPLE_TIME,
    "user_data": "alice",
    "list_ids": [EXAMPLE_ID],
    "event_id": None,
    "sample_id": EXAMPLE_ID,
    "descriptor_versions": [1],
}


class Face(Shape):
    model_config = ConfigDict(json_schema_extra=examples(FACE))
    face_id: str
    account_id: str
    created_at: datetime
    user_data: str | None = None
    list_ids: tuple[str, ...] = ()
    event_id: str | None = None
    sample_id: str | None = None
    descriptor_versions: tuple[int, ...] = ()
    basic_attributes: BasicAttributes | None = Field(
        None, description="estimated when the face was created with basic_attr=1"
    )
    avatar_sample_id: str | None = Field(
        None, description="the sample GET /v1/faces/{id}/avatar shows (avatar=1, or one set)"
    )


class Faces(Shape):
    faces: tuple[Face, ...]
    model_config = ConfigDict(json_schema_extra=examples({"faces": [FACE]}))


# --- matcher -------------------------------------------------------------------------------------


class Reference(Body):
    """What to match: a stored face, an event's face, an image sent along, or a descriptor."""

    refusal_code: ClassVar[str] = "bad_reference"
    type: Literal["face", "event", "image", "descriptor"]
    id: str | None = Field(None, description="face id or event id (types face and event)")
    face_index: int = Field(0, ge=0, le=MAX_FACE_INDEX, description="the event's face")
    data: str | None = Field(
        None,
        description="base64 image (type image), or base64 little-endian float32 values of a "
        "descriptor (type descriptor)",
    )
    version: int | None = Field(
        None,
        description="the descriptor's version (type descriptor): the deployment's default one, "
        "which the candidates are matched in",
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.type in ("face", "event") and self.id is None:
            raise ValueError(f"a {self.type} reference needs a string `id`")
        if self.type == "descriptor" and self.version is None:
            raise ValueError("a descriptor reference needs its `version`")
        if self.type in ("image", "descriptor"):
            try:
                base64.b64decode(self.data or "", validate=True)
            except binascii.Error:
                raise ValueError(f"a {self.type} reference needs base64 `data`") from None
        return self

    @classmethod
    def descriptor(cls, vector: bytes, version: int) -> Reference:
        """A raw descriptor: its float32 little-endian bytes and its version."""
        return cls(type="descriptor", data=base64.b64encode(vector).decode(), version=version)

    @classmethod
    def face(cls, face_id: str) -> Reference:
        return cls(type="face", id=face_id)

    @classmethod
    def event(cls, event_id: str, face_index: int = 0) -> Reference:
        return cls(type="event", id=event_id, face_index=face_index)

    @classmethod
    def image(cls, image: bytes) -> Reference:
        return cls(type="image", data=base64.b64encode(image).decode())

    def image_bytes(self) -> bytes:
        return base64.b64decode(self.data or "", validate=True)

    def to_json(self) -> dict[str, Any]:
        """As a request carries it: only what its type uses."""
        if self.type == "image":
            return {"type": "image", "data": self.data}
        if self.type == "descriptor":
            return {"type": "descriptor", "data": self.data, "version": self.version}
        if self.type == "event":
            return {"type": "event", "id": self.id, "face_index": self.face_index}
        return {"type": "face", "id": self.id}

    def shown(self) -> dict[str, Any]:
        """As the answer echoes it: without an image's bytes."""
        return {k: v for k, v in self.to_json().items() if k != "data"}


class Candidates(Body):
    """Whom to match against: the faces of these lists and these faces."""

    refusal_code: ClassVar[str] = "bad_candidates"
    list_ids: list[str] = []
    face_ids: list[str] = []

    @model_validator(mode="after")
    def _some(self) -> Self:
        if not (self.list_ids or self.face_ids):
            raise ValueError("candidates need list_ids or face_ids")
        return self


class MatchRequest(Body):
    references: Annotated[
        list[Reference], Field(min_length=1, max_length=100), Code("bad_references")
    ]
    candidates: Candidates
    limit: Annotated[int | None, Field(ge=1, le=100), Code("bad_limit")] = Field(
        None, description="matches per reference (default: the match.limit setting)"
    )
    threshold: Annotated[float | None, Field(ge=-1, le=1), Code("bad_threshold")] = Field(
        None, description="lowest similarity (default: per descriptor version)"
    )
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "references": [{"type": "face", "id": EXAMPLE_ID}],
                    "candidates": {"list_ids": [EXAMPLE_ID]},
                    "limit": 3,
                }
            ]
        }
    )


class MatchResult(Shape):
    reference: dict[str, Any] = Field(description="the reference, without an image's data")
    matches: tuple[Match, ...]


class MatchResults(Shape):
    results: tuple[MatchResult, ...] = Field(description="one per reference, in order")
    descriptor_version: int
    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "results": [{"reference": {"type": "face", "id": EXAMPLE_ID}, "matches": [MATCH]}],
                "descriptor_version": 1,
            }
        )
    )


# --- liveness and sdk ----------------------------------------------------------------------------


class LivenessQuery(Query):
    OS: Annotated[Literal["IOS", "ANDROID", "DESKTOP", "UNKNOWN"] | None, Code("bad_os")] = Field(
        None, description="the capturing device's OS (Liveness V1; validated, then echoed)"
    )


class SdkQuery(Query):
    estimate_liveness: Flag = Field(False, description="1: Liveness V2 of the one face")
    estimate_basic_attributes: Flag = Field(
        False, description="1: age, gender and expressions of each face answered"
    )


class LivenessEstimate(Shape):
    prediction: Literal["real", "spoof"]
    probability: float = Field(ge=0, le=1)
    quality: float = Field(ge=0, le=1, description="the lowest of quality_parts")
    quality_parts: dict[str, float] = Field(
        default_factory=dict,
        description="processors.quality's parts, each [0..1], 1 = no problem: blur, dark, "
        "light, resolution, blockiness, pose, faceness",
    )
    probability_threshold: float
    quality_threshold: float


class DeviceMeta(Shape):
    OS: Literal["IOS", "ANDROID", "DESKTOP", "UNKNOWN"]


LIVENESS = {
    "version": "v2",
    "liveness": {
        "prediction": "real",
        "probability": 0.97,
        "quality": 0.8,
        "quality_parts": {
            "blur": 0.8,
            "dark": 1.0,
            "light": 1.0,
            "resolution": 1.0,
            "blockiness": 1.0,
            "pose": 0.9,
            "faceness": 1.0,
        },
        "probability_threshold": 0.5,
        "quality_threshold": 0.5,
    },
    "face": BOX,
}


class LivenessResult(Shape):
    model_config = ConfigDict(json_schema_extra=examples(LIVENESS))
    version: Literal["v1", "v2"]
    liveness: LivenessEstimate
    face: Box
    meta: DeviceMeta | None = Field(None, description="Liveness V1 only")


class SdkFace(Shape):
    box: Box
    landmarks: tuple[float, ...] = Field(description="5 points: x0, y0, ... x4, y4")
    liveness: LivenessResult | None = None
    basic_attributes: BasicAttributes | None = None


class SdkFaces(Shape):
    faces: tuple[SdkFace, ...]
    model_config = ConfigDict(
        json_schema_extra=examples({"faces": [{"box": BOX, "landmarks": [1.0] * 10}]})
    )


# --- tasks ---------------------------------------------------------------------------------------


def _known_version(version: int) -> int:
    if version not in DESCRIPTOR_VERSIONS:
        raise ValueError(f"version must be one of {sorted(DESCRIPTOR_VERSIONS)}")
    return version


class Reextract(Body):
    version: Annotated[
        StrictInt,
        AfterValidator(_known_version),
        WithJsonSchema({"type": "integer", "enum": sorted(DESCRIPTOR_VERSIONS)}),
        Code("bad_version"),
    ]
    task_id: TaskId | None = Field(None, description="default to-v<version>; the same resumes")
    lanes: Annotated[int | None, Field(ge=1, le=MAX_LANES), Code("bad_lanes")] = Field(
        None, description="extractions side by side (default: one per core)"
    )
    model_config = ConfigDict(
        json_schema_extra=examples({"version": 2, "task_id": "to-v2", "lanes": 2})
    )


TASK = {
    "task_id": "to-v2",
    "version": 2,
    "status": "running",
    "total": 100,
    "processed": 40,
    "errors": 0,
    "not_reextractable": 1,
}


class Task(Shape):
    model_config = ConfigDict(json_schema_extra=examples(TASK))
    """A re-extraction task: its status and counts."""

    task_id: str
    version: int
    status: Literal["starting", "running", "done", "stopped", "failed", "interrupted"] = Field(
        description="interrupted: its process ended while it ran; start it again to resume"
    )
    total: int
    processed: int
    errors: int
    not_reextractable: int = Field(
        description="known faces without a sample and samples deleted from the samples topic"
    )
    error: str | None = None


class Tasks(Shape):
    tasks: tuple[Task, ...]
    model_config = ConfigDict(json_schema_extra=examples({"tasks": [TASK]}))


def refused(model: type[BaseModel], exc: ValidationError) -> tuple[str, str]:
    """(error code, description) of a request `model` refuses: the first refused field, with
    the code that field (or its model) declares. The server answers it as a 400; the client
    raises it before sending what the server would refuse."""
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "the request"
    return _code(model, error["loc"]), f"{where}: {error['msg']}"


def _code(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The innermost code along `loc`: a field's `Code`, else the model's `refusal_code`."""
    code: str = getattr(model, "refusal_code", "bad_json")
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            break
        code = getattr(current, "refusal_code", code)  # inside this model now
        if isinstance(part, int):
            continue  # an item of a list of `current`
        field = current.model_fields.get(part)
        if field is None:
            break
        found_code, current = _declared(field.annotation, field.metadata)
        code = found_code or str(getattr(current, "refusal_code", code))
    return code


def _declared(annotation: Any, metadata: list[Any]) -> tuple[str | None, type[BaseModel] | None]:
    """The `Code` and the model found in a field's type (through Annotated, unions, lists)."""
    code = next((item.code for item in metadata if isinstance(item, Code)), None)
    model = None
    pending = [annotation]
    while pending:
        item = pending.pop()
        if isinstance(item, Code):
            code = code or item.code
        elif isinstance(item, type) and issubclass(item, BaseModel):
            model = model or item
        else:
            pending.extend(get_args(item))
    return code, model
