"""The OpenAPI document (generated from the route table and the shapes), an HTML page rendering
it, health and settings."""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import cache
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from processors.session import opened_models, providers
from streams.api import render
from streams.api.requests import admin, is_admin
from streams.api.shapes import Health, SettingsView
from streams.api.spec import Media, Operation, document

METHODS = ("get", "post", "put", "patch", "delete")


@cache
def _yaml(operations: tuple[Operation, ...]) -> str:
    return yaml.safe_dump(document(operations), sort_keys=False, allow_unicode=True)


def _parameters(operation: dict[str, Any]) -> str:
    rows = []
    for parameter in operation.get("parameters", []):
        rows.append(
            f"<tr><td><code>{html.escape(parameter['name'])}</code></td>"
            f"<td>{parameter['in']}</td><td>{'yes' if parameter.get('required') else ''}</td>"
            f"<td>{html.escape(parameter.get('description', ''))}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<table><tr><th>parameter</th><th>in</th><th>required</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render_html(spec: dict[str, Any]) -> str:
    sections = []
    for path, operations in spec["paths"].items():
        for method in METHODS:
            if method not in operations:
                continue
            operation = operations[method]
            bodies = ", ".join(operation.get("requestBody", {}).get("content", {}))
            statuses = ", ".join(str(s) for s in operation.get("responses", {}))
            sections.append(
                f"<section><h2><span class='{method}'>{method.upper()}</span> "
                f"<code>{html.escape(path)}</code></h2>"
                f"<p><b>{html.escape(operation.get('summary', ''))}</b></p>"
                f"<p>{html.escape(operation.get('description', '')).replace(chr(10), '<br>')}</p>"
                f"{_parameters(operation)}"
                + (f"<p>Body: {html.escape(bodies)}</p>" if bodies else "")
                + f"<p>Responses: {statuses}</p></section>"
            )
    info = spec["info"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(info['title'])}</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "section{border-top:1px solid #ccc;padding:.5em 0}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}"
        ".get{color:#06c}.post{color:#090}.patch{color:#a60}.delete{color:#c00}"
        "</style></head><body>"
        f"<h1>{html.escape(info['title'])} v{info['version']}</h1>"
        f"<p>{html.escape(info.get('description', '')).replace(chr(10), '<br>')}</p>"
        "<p>Machine-readable: <a href='/v1/openapi.yml'>openapi.yml</a>, "
        "<a href='/v1/openapi.json'>openapi.json</a></p>" + "".join(sections) + "</body></html>"
    )


async def health(request: Request) -> JSONResponse:
    """Up or not for anyone; the counts (every account's) and where the models run for the
    administrator only."""
    if not is_admin(request):
        return JSONResponse({"status": "ok"})
    directory = request.app.state.services.directory
    counts = Health(
        status="ok",
        faces=len(directory.faces),
        lists=len(directory.lists),
        runtime_providers=tuple(providers()),
        models=opened_models(),
    )
    return render.respond(counts)


async def effective_settings(request: Request) -> JSONResponse:
    """The settings this process uses now, secrets hidden."""
    from streams.control.config import hide_secrets

    admin(request)
    services = request.app.state.services
    return JSONResponse(hide_secrets(services.settings.model_dump(mode="json")))


operations = [
    Operation(
        "GET",
        "/v1/settings",
        effective_settings,
        "The settings this API process uses now (secrets hidden)",
        {200: SettingsView},
        account=False,
        admin=True,
    ),
    Operation(
        "GET",
        "/v1/health",
        health,
        "Liveness of the API process itself",
        {200: Health},
        account=False,
        admin_optional=True,
    ),
]


def document_operations(table: Sequence[Operation]) -> list[Operation]:
    """The routes that serve the document of `table` (themselves left out of it)."""
    described = tuple(table)

    async def openapi_yaml(request: Request) -> Response:
        return Response(_yaml(described), media_type="application/yaml")

    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(document(described))

    async def docs_page(request: Request) -> HTMLResponse:
        return HTMLResponse(render_html(document(described)))

    return [
        Operation(
            "GET", path, handler, summary, {200: Media(kind)}, account=False, documented=False
        )
        for path, handler, summary, kind in (
            ("/v1/openapi.yml", openapi_yaml, "This document", "application/yaml"),
            ("/v1/openapi.json", openapi_json, "This document", "application/json"),
            ("/v1/docs", docs_page, "This document as a page", "text/html"),
        )
    ]
