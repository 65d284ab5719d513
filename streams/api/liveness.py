"""POST /v1/liveness and /v1/sdk: LUNA-style Liveness V1/V2, chosen by licence and settings.

Which version answers follows LUNA PLATFORM's tables (streams.control.licence); the licence is
checked before the body is read, so a call the licence refuses costs no upload or decoding.

Both versions run the same estimator, the two MiniFASNets averaged as Silent-Face's own test.py
combines them, with the same thresholds (settings.liveness): there is no evidence either model
alone is better for one version. What differs is the requirements each puts on the image and
face (processors.liveness_requirements) and V1's `OS` parameter. The quality is processors.quality
on the original image, with its parts. The prediction is "real" when the probability and the
quality both reach their thresholds.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from processors import liveness_requirements as requirements
from processors import quality as face_quality
from processors.errors import ProcessingError
from processors.image import decode_image
from processors.liveness_requirements import Version
from processors.types import Detection, ImageBGR
from streams.api import render, requests
from streams.api.errors import ApiError
from streams.api.shapes import OS_VALUES, LivenessQuery, LivenessResult, SdkFaces, SdkQuery
from streams.api.spec import Operation, route_table
from streams.control.licence import Resource, licensed
from streams.models.modelset import ModelSet
from streams.settings import Settings


class Services(Protocol):
    """What app.state.services holds for these routes."""

    settings: Settings
    models: ModelSet


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def licensed_or_403(resource: Resource, settings: Settings) -> Version:
    """The Liveness version serving `resource`, or the licence's refusal as a 403."""
    try:
        return licensed(resource, settings)
    except ProcessingError as refused:
        raise ApiError(403, refused.code, refused.message) from None


def _version(request: Request, resource: Literal["liveness", "sdk"]) -> Version:
    return licensed_or_403(resource, _services(request).settings)


def device_os(query: str | None, meta: str | None) -> str:
    """V1's `OS`, from the query or the multipart `meta` JSON (both: they must agree)."""
    from_meta = None
    if meta is not None:
        parsed = requests.parse_json(meta, "bad_meta")
        if not isinstance(parsed, dict) or set(parsed) - {"OS"}:
            raise ApiError(
                400, "bad_meta", f'meta must be a JSON object like {{"OS": "IOS"}}, got {meta!r}'
            )
        from_meta = parsed.get("OS")
    for value in (query, from_meta):
        if value is not None and value not in OS_VALUES:
            raise ApiError(
                400, "bad_os", f"OS must be one of {', '.join(OS_VALUES)}, got {value!r}"
            )
    if query is not None and from_meta is not None and query != from_meta:
        raise ApiError(400, "bad_os", f"OS is {query} in the query but {from_meta} in meta")
    return query or from_meta or "UNKNOWN"


def _decode(settings: Settings, data: bytes) -> ImageBGR:
    return decode_image(
        data, max_bytes=settings.image.max_bytes, max_pixels=settings.image.max_pixels
    )


def _box(detection: Detection) -> dict[str, float]:
    return {
        "x": detection.x,
        "y": detection.y,
        "width": detection.width,
        "height": detection.height,
        "score": detection.score,
    }


def _estimate(
    services: Services, version: Version, image: ImageBGR
) -> tuple[Detection, dict[str, Any]]:
    """The image's one face and its LivenessResult, after the version's requirements."""
    height, width = image.shape[:2]
    configured = services.settings.liveness
    rules = requirements.requirements(
        version,
        min_padding=getattr(configured, f"{version}_min_padding"),
        min_eye_distance=configured.v1_min_eye_distance if version == "v1" else None,
    )
    requirements.check_image(rules, width, height)
    detections = services.models.detector.detect(image)
    requirements.check_faces(
        rules, width, height, detections, lambda d: services.models.pose.estimate(image, d)
    )
    face = detections[0]
    estimator = services.models.liveness
    measured = face_quality.estimate(image, face)
    result = estimator.estimate([estimator.crops(image, face)], [measured.overall])[0]
    thresholds = services.settings.liveness
    real = (
        result.probability >= thresholds.threshold
        and result.quality >= thresholds.quality_threshold
    )
    return face, {
        "version": version,
        "liveness": {
            "prediction": "real" if real else "spoof",
            "probability": result.probability,
            "quality": result.quality,
            "quality_parts": measured.parts(),
            "probability_threshold": thresholds.threshold,
            "quality_threshold": thresholds.quality_threshold,
        },
        "face": _box(face),
    }


async def liveness(request: Request) -> JSONResponse:
    """The one face's liveness.

    V1 answers `meta.OS`: the device OS the client named (query `OS` or multipart `meta`),
    UNKNOWN when none. It is validated and returned but changes nothing: the models take no OS
    input and there is no per-OS calibration to pick thresholds from, so any per-OS behaviour
    would be invented. V2 has no OS parameter; one sent is still validated, then ignored, so a
    client need not know which version the licence selects.
    """
    requests.account_id(request)
    version = _version(request, "liveness")
    services = _services(request)
    data, fields = await requests.image_and_fields(request, services.settings.api.max_body_bytes)
    os_name = device_os(requests.query(request, LivenessQuery).OS, fields.get("meta"))
    image = await run_in_threadpool(_decode, services.settings, data)
    _, answer = await run_in_threadpool(_estimate, services, version, image)
    if version == "v1":
        answer["meta"] = {"OS": os_name}
    return render.respond(LivenessResult.model_validate(answer), exclude_none=True)


async def sdk(request: Request) -> JSONResponse:
    """Every face's box and landmarks; with estimate_liveness=1, Liveness V2 of the one face
    the V2 requirements allow (they refuse images with more). With estimate_basic_attributes=1
    each face answered gets its age, gender and expressions."""
    requests.account_id(request)
    given = requests.query(request, SdkQuery)
    version = _version(request, "sdk") if given.estimate_liveness else None
    services = _services(request)
    data, _ = await requests.image_and_fields(request, services.settings.api.max_body_bytes)
    faces = await run_in_threadpool(
        _sdk_faces, services, version, data, given.estimate_basic_attributes
    )
    return render.respond(SdkFaces.model_validate({"faces": faces}), exclude_none=True)


def _sdk_faces(
    services: Services, version: Version | None, data: bytes, attributes: bool
) -> list[dict[str, Any]]:
    image = _decode(services.settings, data)
    if version is None:
        detections = services.models.detector.detect(image)
        faces = [_face(d) for d in detections]
    else:
        face, result = _estimate(services, version, image)
        detections, faces = [face], [{**_face(face), "liveness": result}]
    if not attributes:
        return faces
    estimator = services.models.attributes
    found = estimator.estimate([estimator.crop(image, d) for d in detections])
    return [
        {**f, "basic_attributes": render.basic_attributes(a)}
        for f, a in zip(faces, found, strict=True)
    ]


def _face(detection: Detection) -> dict[str, Any]:
    return {"box": _box(detection), "landmarks": detection.landmarks.reshape(-1).tolist()}


LICENCE = "the licence or settings serve no Liveness version here (the code says which)"
operations = [
    Operation(
        "POST",
        "/v1/liveness",
        liveness,
        "Liveness of the one face in an image (Liveness V1 or V2, by licence and settings)",
        {200: LivenessResult},
        {403: LICENCE},
        query=LivenessQuery,
        image=True,
        form_fields={"meta": 'JSON, e.g. {"OS": "IOS"} (Liveness V1)'},
    ),
    Operation(
        "POST",
        "/v1/sdk",
        sdk,
        "Detect faces and, with estimate_liveness=1, estimate their liveness (Liveness V2 "
        "only); with estimate_basic_attributes=1, their age, gender and expressions",
        {200: SdkFaces},
        {403: LICENCE},
        query=SdkQuery,
        image=True,
    ),
]
routes = route_table(operations)  # these routes alone (an app of their own in the tests)
