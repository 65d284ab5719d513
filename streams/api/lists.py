"""Lists: create, read, page, delete; link and unlink faces. Lists live on a compacted topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from schemas import records
from streams.api import render
from streams.api.errors import not_found
from streams.api.requests import account_id, json_model, query
from streams.api.services import Services
from streams.api.shapes import FaceList, LinkFaces, ListCreated, ListPage, NewList, Page
from streams.api.spec import Operation

JSON_LIMIT = 1024 * 1024


async def create_list(request: Request) -> JSONResponse:
    """The body is optional: a list without user data."""
    services: Services = request.app.state.services
    account = account_id(request)
    has_body = request.headers.get("content-length", "0") != "0"
    body = await json_model(request, NewList, JSON_LIMIT) if has_body else NewList()
    list_id = str(uuid.uuid4())
    record: records.List = {
        "list_id": list_id,
        "account_id": account,
        "user_data": body.user_data,
        "created_at": datetime.now(UTC),
    }
    await services.save_list(list_id, record)
    return render.respond(ListCreated(list_id=list_id), 201)


def owned_list(services: Services, account: str, list_id: str) -> records.List:
    record = services.directory.find_list(account, list_id)
    if record is None:
        raise not_found("list", list_id)
    return record


async def get_list(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    record = owned_list(services, account_id(request), request.path_params["list_id"])
    count = len(services.directory.faces_in(record["account_id"], record["list_id"]))
    return render.respond(render.face_list(record, count))


async def list_lists(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    account = account_id(request)
    params = query(request, Page)
    page_number, size = params.page, params.page_size
    mine = sorted(
        (r for r in services.directory.lists.values() if r["account_id"] == account),
        key=lambda r: (r["created_at"], r["list_id"]),
    )
    shown = mine[(page_number - 1) * size : page_number * size]
    lists = [
        render.face_list(r, len(services.directory.faces_in(account, r["list_id"]))) for r in shown
    ]
    return render.respond(
        ListPage(lists=tuple(lists), page=page_number, page_size=size, total=len(mine))
    )


async def relink(services: Services, face: records.Face, list_ids: list[str]) -> None:
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
    body = await json_model(request, LinkFaces, JSON_LIMIT)
    faces = []
    for face_id in body.face_ids:
        face = services.directory.find_face(account, face_id)
        if face is None:
            raise not_found("face", face_id)
        faces.append(face)
    for face in faces:  # all checked first: the request applies whole or not at all
        others = [i for i in face["list_ids"] if i != list_id]
        await relink(services, face, [*others, list_id] if body.action == "attach" else others)
    return Response(status_code=204)


operations = [
    Operation(
        "POST",
        "/v1/lists",
        create_list,
        "Create a list",
        {201: ListCreated},
        body=NewList,
        body_required=False,
    ),
    Operation("GET", "/v1/lists", list_lists, "The account's lists", {200: ListPage}, query=Page),
    Operation(
        "GET",
        "/v1/lists/{list_id}",
        get_list,
        "One list, with its face count",
        {200: FaceList},
        {404: "list_not_found"},
    ),
    Operation(
        "DELETE",
        "/v1/lists/{list_id}",
        delete_list,
        "Delete a list",
        {204: None},
        {404: "list_not_found"},
    ),
    Operation(
        "PATCH",
        "/v1/lists/{list_id}/faces",
        link_faces,
        "Link faces to, or unlink them from, a list",
        {204: None},
        {404: "list_not_found or face_not_found (nothing changed)"},
        body=LinkFaces,
    ),
]
