"""Lists: create, read, page, delete; link and unlink faces. Lists live on a compacted topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streams.api import render
from streams.api.errors import ApiError, not_found
from streams.api.requests import account_id, json_body, page
from streams.api.services import Services

USER_DATA_MAX = 128
JSON_LIMIT = 1024 * 1024


def user_data(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > USER_DATA_MAX:
        raise ApiError(
            400, "bad_user_data", f"user_data must be a string of at most {USER_DATA_MAX}"
        )
    return value


async def create_list(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    has_body = request.headers.get("content-length", "0") != "0"
    body = await json_body(request, JSON_LIMIT) if has_body else {}
    list_id = str(uuid.uuid4())
    record = {
        "list_id": list_id,
        "account_id": account,
        "user_data": user_data(body.get("user_data")),
        "created_at": datetime.now(UTC),
    }
    await services.save_list(list_id, record)
    return JSONResponse({"list_id": list_id}, status_code=201)


def owned_list(services: Services, account: str, list_id: str) -> dict[str, Any]:
    record = services.directory.find_list(account, list_id)
    if record is None:
        raise not_found("list", list_id)
    return record


async def get_list(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    record = owned_list(services, account_id(request), request.path_params["list_id"])
    count = len(services.directory.faces_in(record["account_id"], record["list_id"]))
    return JSONResponse(render.face_list(record, count))


async def list_lists(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    page_number, size = page(request)
    mine = sorted(
        (r for r in services.directory.lists.values() if r["account_id"] == account),
        key=lambda r: (r["created_at"], r["list_id"]),
    )
    shown = mine[(page_number - 1) * size : page_number * size]
    return JSONResponse(
        {
            "lists": [
                render.face_list(r, len(services.directory.faces_in(account, r["list_id"])))
                for r in shown
            ],
            "page": page_number,
            "page_size": size,
            "total": len(mine),
        }
    )


async def relink(services: Services, face: dict[str, Any], list_ids: list[str]) -> None:
    await services.save_face(face["face_id"], {**face, "list_ids": list_ids})


async def delete_list(request: Request) -> Response:
    """The list goes; its faces stay, unlinked from it."""
    services: Services = request.app.state.services
    record = owned_list(services, account_id(request), request.path_params["list_id"])
    list_id = record["list_id"]
    for face in services.directory.faces_in(record["account_id"], list_id):
        await relink(services, face, [i for i in face["list_ids"] if i != list_id])
    await services.save_list(list_id, None)
    return Response(status_code=204)


async def link_faces(request: Request) -> Response:
    services: Services = request.app.state.services
    account = account_id(request)
    list_id = owned_list(services, account, request.path_params["list_id"])["list_id"]
    body = await json_body(request, JSON_LIMIT)
    action, face_ids = body.get("action"), body.get("face_ids")
    if action not in ("attach", "detach"):
        raise ApiError(400, "bad_action", f"action must be attach or detach, got {action!r}")
    if not isinstance(face_ids, list) or not 1 <= len(face_ids) <= 1000:
        raise ApiError(400, "bad_face_ids", "face_ids must be a list of 1 to 1000 face ids")
    faces = []
    for face_id in face_ids:
        face = services.directory.find_face(account, str(face_id))
        if face is None:
            raise not_found("face", str(face_id))
        faces.append(face)
    for face in faces:  # all checked first: the request applies whole or not at all
        others = [i for i in face["list_ids"] if i != list_id]
        await relink(services, face, [*others, list_id] if action == "attach" else others)
    return Response(status_code=204)


routes = [
    Route("/v1/lists", create_list, methods=["POST"]),
    Route("/v1/lists", list_lists, methods=["GET"]),
    Route("/v1/lists/{list_id}", get_list, methods=["GET"]),
    Route("/v1/lists/{list_id}", delete_list, methods=["DELETE"]),
    Route("/v1/lists/{list_id}/faces", link_faces, methods=["PATCH"]),
]
