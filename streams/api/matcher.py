"""POST /v1/matcher/faces: references (faces, event faces, images) against candidates (lists,
faces) of the same account, with the default descriptor version on both sides."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from processors.matcher import Gallery
from streams.api.errors import ApiError, not_found
from streams.api.events import quote
from streams.api.faces import MAX_FACE_INDEX, FaceOptions, describe
from streams.api.requests import account_id, integer, json_body, strings
from streams.api.services import Services

Record = dict[str, Any]
Vector = npt.NDArray[np.float32]


def _vector(face: Record, version: int) -> Vector | None:
    for descriptor in face["descriptors"]:
        if descriptor["version"] == version:
            return np.frombuffer(descriptor["vector"], dtype="<f4")
    return None


async def reference_vector(services: Services, account: str, ref: Any, version: int) -> Vector:
    if not isinstance(ref, dict) or ref.get("type") not in ("face", "event", "image"):
        raise ApiError(
            400, "bad_reference", f"a reference needs type face, event or image: {ref!r}"
        )
    kind = ref["type"]
    if kind in ("face", "event") and not isinstance(ref.get("id"), str):
        raise ApiError(400, "bad_reference", f"a {kind} reference needs a string `id`")
    if kind == "face":
        face = services.directory.find_face(account, ref["id"])
        if face is None:
            raise not_found("face", ref["id"])
        vector = _vector(face, version)
        if vector is None:
            raise ApiError(
                409,
                "descriptor_version_missing",
                f"face {face['face_id']} has no version {version} descriptor yet",
            )
        return vector
    if kind == "event":
        index = integer(ref.get("face_index", 0), "face_index", 0, MAX_FACE_INDEX, "bad_reference")
        rows = await services.query(
            f"SELECT descriptor FROM {services.settings.storage.database}.descriptors FINAL "
            f"WHERE account_id = {quote(account)} AND owner_kind = 'event' AND "
            f"owner_id = {quote(ref['id'])} AND face_index = {index} "
            f"AND descriptor_version = {version}"
        )
        if not rows:
            raise ApiError(
                404,
                "event_face_not_found",
                f"event {ref.get('id')} has no face {index} with a version {version} "
                "descriptor in this account",
            )
        return np.asarray(rows[0]["descriptor"], dtype=np.float32)
    try:
        data = base64.b64decode(str(ref.get("data", "")), validate=True)
    except binascii.Error:
        raise ApiError(400, "bad_reference", "an image reference needs base64 `data`") from None
    options = FaceOptions(get_major_detection=True)
    ((_, vector),) = await run_in_threadpool(describe, services, data, options)
    return vector


def candidates(services: Services, account: str, spec: Any, version: int) -> Gallery:
    """A gallery of exactly the candidate faces (those of the lists and the ones named)."""
    if not isinstance(spec, dict) or not (spec.get("list_ids") or spec.get("face_ids")):
        raise ApiError(400, "bad_candidates", "candidates need list_ids or face_ids")
    chosen: dict[str, Record] = {}
    for list_id in strings(spec.get("list_ids") or [], "list_ids", "bad_candidates"):
        if services.directory.find_list(account, list_id) is None:
            raise not_found("list", list_id)
        chosen |= {f["face_id"]: f for f in services.directory.faces_in(account, list_id)}
    for face_id in strings(spec.get("face_ids") or [], "face_ids", "bad_candidates"):
        face = services.directory.find_face(account, face_id)
        if face is None:
            raise not_found("face", face_id)
        chosen[face["face_id"]] = face
    gallery = Gallery(128)
    for face_id, face in chosen.items():
        vector = _vector(face, version)
        if vector is not None:  # faces not yet re-extracted to this version cannot compare
            gallery.upsert(face_id, vector, frozenset())
    return gallery


async def match(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    body = await json_body(request, services.settings.api.max_body_bytes)
    references = body.get("references")
    if not isinstance(references, list) or not 1 <= len(references) <= 100:
        raise ApiError(400, "bad_references", "references must be a list of 1 to 100 references")
    version = services.settings.descriptor.default_face_descriptor_version
    limit = integer(body.get("limit", services.settings.match.limit), "limit", 1, 100, "bad_limit")
    threshold = body.get("threshold", services.settings.match.threshold(version))
    if type(threshold) not in (int, float) or not -1 <= threshold <= 1:  # a bool is no number
        raise ApiError(400, "bad_threshold", "threshold must be a number in [-1, 1]")
    gallery = candidates(services, account, body.get("candidates"), version)
    results = []
    for ref in references:
        vector = await reference_vector(services, account, ref, version)
        (found,) = gallery.search(vector[None, :], list_id=None, limit=limit, threshold=threshold)
        shown_ref = {k: v for k, v in ref.items() if k != "data"}
        results.append(
            {
                "reference": shown_ref,
                "matches": [
                    {
                        "face_id": m.face_id,
                        "similarity": m.similarity,
                        "user_data": services.directory.faces[m.face_id]["user_data"],
                    }
                    for m in found
                ],
            }
        )
    return JSONResponse({"results": results, "descriptor_version": version})


routes = [Route("/v1/matcher/faces", match, methods=["POST"])]
