"""The route table and the OpenAPI document generated from it and the shapes (streams.api.shapes).

Each operation is declared once: its handler, its query and body models, its answers. The
Starlette routes come from the table (one route per path, so a 405 names every method the path
takes in `Allow`), and so does the OpenAPI 3.1 document: schemas from pydantic, the errors every
operation can answer added from what it reads (the account header, a body, the administrator
token), an example for every body and answer.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streams.api.requests import ACCOUNT_HEADER
from streams.api.shapes import TASK_ID_PATTERN, Body, Error, Query

Handler = Callable[[Request], Awaitable[Response]]
REF = "#/components/schemas/{model}"
ERROR_REF = {"$ref": REF.format(model="Error")}
PATH_SCHEMAS = {"task_id": {"type": "string", "pattern": TASK_ID_PATTERN}}
IMAGE = {"type": "string", "format": "binary"}


@dataclass(frozen=True)
class Media:
    """An answer that is not one of the shapes (a download, the document itself)."""

    type: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    example: str | None = None


Answer = type[BaseModel] | Media | None  # None: no content (204)


@dataclass(frozen=True, eq=False)  # hashed by identity: documents are cached per table
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    answers: dict[int, Answer]  # the successful ones
    errors: dict[int, str] = field(default_factory=dict)  # beyond those the inputs imply
    query: type[Query] | None = None
    body: type[Body] | tuple[type[Body], ...] | None = None  # a JSON body, or one of these
    body_required: bool = True
    image: bool = False  # a raw image, or multipart with the file in `image`
    form_fields: dict[str, str] = field(default_factory=dict)  # more multipart text fields
    account: bool = True
    admin: bool = False
    admin_optional: bool = False  # the token adds to the answer (health)
    documented: bool = True

    @property
    def description(self) -> str:
        return inspect.getdoc(self.handler) or ""

    @property
    def bodies(self) -> tuple[type[Body], ...]:
        """The JSON bodies the operation takes (documented as oneOf when several)."""
        if self.body is None:
            return ()
        return self.body if isinstance(self.body, tuple) else (self.body,)


def route_table(operations: Iterable[Operation]) -> list[Route]:
    """One route per path, dispatching on the method."""
    by_path: dict[str, dict[str, Handler]] = {}
    for operation in operations:
        by_path.setdefault(operation.path, {})[operation.method] = operation.handler
    return [_route(path, handlers) for path, handlers in by_path.items()]


def _route(path: str, handlers: dict[str, Handler]) -> Route:
    if "GET" in handlers:
        handlers = {**handlers, "HEAD": handlers["GET"]}

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method](request)

    return Route(path, dispatch, methods=list(handlers))


# --- the document --------------------------------------------------------------------------------

INFO = {
    "title": "facestream API",
    "version": "1",
    "description": """Streaming face recognition over HTTP: ingest images into the pipeline, read
events, manage lists and faces, match, and estimate liveness.

Every request to a resource needs a `Luna-Account-Id` header (a UUID). Data created with it
belongs to that account; reads, lists and matches only ever see that account's data (another
account's id is a 404).

Errors are JSON: `{"error_code": "...", "desc": "..."}` with a 4xx/5xx status. A request the
server cannot take (malformed JSON, JSON nested over 32 levels, a lone surrogate, a wrong type
such as `true` for an integer, a time out of range) is a 400 with its code. A body over the
server's limit is a 413, a wrong content type a 415, a method a path does not take a 405 with
`Allow`. A 500 is `internal_error` and says only an error id; the server's log line carries it.

Routes that span accounts (tasks, settings, the counts in health) are the administrator's: they
need `Authorization: Bearer <api.admin_token>`, answer 401 `admin_required` without it, 403
`bad_admin_token` with a wrong one, and 403 `admin_disabled` when the server has no token set.""",
}


def _examples(model: type[BaseModel]) -> list[Any]:
    extra = model.model_config.get("json_schema_extra")
    found = extra.get("examples") if isinstance(extra, dict) else None
    return found if isinstance(found, list) else []


def _json(model: type[BaseModel], names: dict[tuple[type[BaseModel], str], str], mode: str) -> Any:
    content: dict[str, Any] = {"schema": {"$ref": REF.format(model=names[(model, mode)])}}
    if examples := _examples(model):
        content["example"] = examples[0]
    return {"application/json": content}


def _error(description: str) -> dict[str, Any]:
    """Every error description starts with the code of its example."""
    code = re.match(r"[a-z_]+", description)
    example = {"error_code": code.group() if code else "http_error", "desc": description}
    media = {"schema": ERROR_REF, "example": example}
    return {"description": description, "content": {"application/json": media}}


def _implied_errors(operation: Operation) -> dict[int, str]:
    """The errors an operation answers because of what it reads."""
    errors: dict[int, list[str]] = {500: ["internal_error: the server failed (an error id)"]}
    refused = []
    if operation.account:
        refused.append("account_id_missing or account_id_malformed (the header)")
    if operation.query is not None:
        refused.append("bad_parameter: a query parameter refused (or the code its field names)")
    if operation.body is not None or operation.image:
        refused.append("bad_json: the body refused (or its field's code, an image's own code)")
        errors[413] = ["body_too_large"]
        errors[415] = ["unsupported_media_type"]
    if "{task_id}" in operation.path:
        refused.append("bad_task_id")
    if refused:
        errors[400] = refused
    if operation.admin:
        errors[401] = ["admin_required: no administrator token was sent"]
    if operation.admin or operation.admin_optional:
        errors[403] = ["bad_admin_token (a wrong token) or admin_disabled (none is set)"]
    return {status: "; ".join(parts) for status, parts in errors.items()}


def _parameters(operation: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if operation.account:
        parameters.append(
            {
                "name": ACCOUNT_HEADER,
                "in": "header",
                "required": True,
                "description": "the account (a UUID)",
                "schema": {"type": "string", "format": "uuid"},
            }
        )
    for name in re.findall(r"{(\w+)}", operation.path):
        path_schema = PATH_SCHEMAS.get(name, {"type": "string"})
        parameters.append({"name": name, "in": "path", "required": True, "schema": path_schema})
    if operation.query is not None:
        schema = operation.query.model_json_schema()
        for name, prop in schema["properties"].items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            description = prop.pop("description", None)
            if isinstance(prop.get("default"), bool):  # a 0/1 flag (shapes.Flag)
                prop["default"] = int(prop["default"])
            if "anyOf" in prop:  # a parameter left out is the null: document the value's type
                (prop,) = [{**p, **_defaulted(prop)} for p in prop.pop("anyOf") if p != NULL]
            parameter = {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
            }
            parameter |= {"schema": prop} | ({"description": description} if description else {})
            parameters.append(parameter)
    return parameters


NULL = {"type": "null"}


def _defaulted(prop: dict[str, Any]) -> dict[str, Any]:
    return {"default": prop["default"]} if prop.get("default") is not None else {}


def _request_body(operation: Operation, names: dict[Any, str]) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if operation.image:
        form = {"image": IMAGE} | {
            n: {"type": "string", "description": d} for n, d in operation.form_fields.items()
        }
        content |= {
            "image/*": {"schema": IMAGE},
            "application/octet-stream": {"schema": IMAGE},
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["image"], "properties": form}
            },
        }
    if len(operation.bodies) == 1:
        content |= _json(operation.bodies[0], names, "validation")
    elif operation.bodies:
        refs = [{"$ref": REF.format(model=names[(b, "validation")])} for b in operation.bodies]
        examples = [e for b in operation.bodies for e in _examples(b)[:1]]
        content |= {"application/json": {"schema": {"oneOf": refs}, "example": examples[0]}}
    if not content:
        return None
    return {"required": operation.body_required, "content": content}


def _answer(answer: Answer, status: int, names: dict[Any, str]) -> dict[str, Any]:
    if answer is None:
        return {"description": "done, no content"}
    if isinstance(answer, Media):
        media: dict[str, Any] = {"schema": answer.schema}
        if answer.example is not None:
            media["example"] = answer.example
        return {"description": answer.type, "content": {answer.type: media}}
    return {
        "description": inspect.getdoc(answer) if answer.__doc__ else answer.__name__,
        "content": _json(answer, names, "serialization"),
    }


def _operation(operation: Operation, names: dict[Any, str]) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": operation.handler.__name__,
        "summary": operation.summary,
    }
    if operation.description:
        described["description"] = operation.description
    if parameters := _parameters(operation):
        described["parameters"] = parameters
    if body := _request_body(operation, names):
        described["requestBody"] = body
    if operation.admin:
        described["security"] = [{"AdminToken": []}]
    elif operation.admin_optional:
        described["security"] = [{}, {"AdminToken": []}]
    responses = {str(s): _answer(a, s, names) for s, a in operation.answers.items()}
    errors = _implied_errors(operation)
    for status, text in operation.errors.items():
        errors[status] = f"{errors[status]}; {text}" if status in errors else text
    responses |= {str(s): _error(text) for s, text in sorted(errors.items())}
    described["responses"] = responses
    return described


@cache
def document(operations: tuple[Operation, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations` (built once per table)."""
    used: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Error, "serialization")}
    for operation in operations:
        used |= {(body, "validation") for body in operation.bodies}
        used |= {
            (a, "serialization")
            for a in operation.answers.values()
            if isinstance(a, type) and issubclass(a, BaseModel)
        }
    ordered = sorted(used, key=lambda pair: (pair[0].__name__, pair[1]))
    keys, schema = models_json_schema(ordered, ref_template=REF)
    names = {pair: ref["$ref"].rsplit("/", 1)[1] for pair, ref in keys.items()}
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        if operation.documented:
            paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
                operation, names
            )
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "responses": {
                "MethodNotAllowed": {
                    "description": "method_not_allowed: the path does not take the method",
                    "headers": {
                        "Allow": {
                            "description": "the methods the path takes",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
            },
            "securitySchemes": {
                "AdminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the server's api.admin_token setting",
                }
            },
        },
    }
