"""POST /v1/matcher/faces: references (faces, event faces, images, raw descriptors) against
candidates (lists, faces) of the same account, with the default descriptor version on both
sides."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from schemas import records
from streams.api import render
from streams.api.descriptors import decode
from streams.api.errors import ApiError, not_found
from streams.api.faces import describe
from streams.api.requests import account_id, json_model
from streams.api.services import Services
from streams.api.shapes import (
    Candidates,
    FacesQuery,
    Match,
    MatchRequest,
    MatchResult,
    MatchResults,
    Reference,
)
from streams.api.spec import Operation
from streams.kafka.gallery import SearchRequest

Vector = npt.NDArray[np.float32]


def _vector(face: records.Face, version: int) -> Vector | None:
    for descriptor in face["descriptors"]:
        if descriptor["version"] == version:
            return np.frombuffer(descriptor["vector"], dtype="<f4")
    return None


async def reference_vector(
    services: Services, account: str, ref: Reference, version: int
) -> Vector:
    if ref.type == "face":
        face = services.directory.find_face(account, ref.id or "")
        if face is None:
            raise not_found("face", ref.id or "")
        vector = _vector(face, version)
        if vector is None:
            raise ApiError(
                409,
                "descriptor_version_missing",
                f"face {face['face_id']} has no version {version} descriptor yet",
            )
        return vector
    if ref.type == "event":
        index = ref.face_index
        rows = await services.query(
            f"SELECT descriptor FROM {services.settings.storage.database}.descriptors FINAL "
            "WHERE account_id = %(account)s AND owner_kind = 'event' AND "
            "owner_id = %(event_id)s AND face_index = %(index)s "
            "AND descriptor_version = %(version)s",
            {"account": account, "event_id": ref.id or "", "index": index, "version": version},
        )
        if not rows:
            raise ApiError(
                404,
                "event_face_not_found",
                f"event {ref.id} has no face {index} with a version {version} "
                "descriptor in this account",
            )
        return np.asarray(rows[0]["descriptor"], dtype=np.float32)
    if ref.type == "descriptor":
        if ref.version != version:
            raise ApiError(
                409,
                "descriptor_version_mismatch",
                f"the reference is a version {ref.version} descriptor; candidates are matched "
                f"in version {version}, the deployment's default",
            )
        return decode(ref.data or "", version)
    # An image reference is described as POST /v1/faces would with get_major_detection=1.
    options = FacesQuery(get_major_detection=True)
    (described,) = await run_in_threadpool(describe, services, ref.image_bytes(), options)
    assert described.vector is not None  # the options ask for a descriptor
    return described.vector


def check_candidates(services: Services, account: str, spec: Candidates) -> None:
    """Every candidate list and face named must be the account's own."""
    for list_id in spec.list_ids:
        if services.directory.find_list(account, list_id) is None:
            raise not_found("list", list_id)
    for face_id in spec.face_ids:
        if services.directory.find_face(account, face_id) is None:
            raise not_found("face", face_id)


async def match(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    body = await json_model(request, MatchRequest, services.settings.api.max_body_bytes)
    version = services.settings.descriptor.default_face_descriptor_version
    limit = body.limit or services.settings.match.limit
    threshold = (
        services.settings.match.threshold(version) if body.threshold is None else body.threshold
    )
    check_candidates(services, account, body.candidates)
    # The account's gallery of the version holds exactly the faces that can compare: candidates
    # not yet re-extracted to it are left out.
    searches = [
        SearchRequest(
            account,
            version,
            await reference_vector(services, account, ref, version),
            list_ids=tuple(body.candidates.list_ids),
            face_ids=tuple(body.candidates.face_ids),
            limit=limit,
            threshold=threshold,
        )
        for ref in body.references
    ]
    found = await run_in_threadpool(services.directory.gallery.search_batch, searches)
    results = tuple(
        MatchResult(reference=ref.shown(), matches=tuple(Match(**m) for m in matches))
        for ref, matches in zip(body.references, found, strict=True)
    )
    return render.respond(MatchResults(results=results, descriptor_version=version))


operations = [
    Operation(
        "POST",
        "/v1/matcher/faces",
        match,
        "Match references against candidates",
        {200: MatchResults},
        {
            404: "face_not_found, list_not_found or event_face_not_found",
            400: "bad_descriptor: a descriptor reference of the wrong size or values",
            409: "descriptor_version_missing: a reference face lacks the version; "
            "descriptor_version_mismatch: a descriptor reference of another version",
            503: "storage_not_shared (event references)",
        },
        body=MatchRequest,
    )
]
