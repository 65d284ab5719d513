"""The OpenAPI spec (kept in the repo as openapi.yml), an HTML page rendering it, health."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from streams.api.requests import admin, is_admin

SPEC_PATH = Path(__file__).with_name("openapi.yml")
METHODS = ("get", "post", "put", "patch", "delete")


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


async def openapi_yaml(request: Request) -> Response:
    return Response(SPEC_PATH.read_text(), media_type="application/yaml")


def _parameters(operation: dict[str, Any]) -> str:
    rows = []
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = spec()["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
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


def render_html() -> str:
    document = spec()
    sections = []
    for path, operations in document["paths"].items():
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
    info = document["info"]
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
        "<p>Machine-readable: <a href='/v1/openapi.yml'>openapi.yml</a></p>"
        + "".join(sections)
        + "</body></html>"
    )


async def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(render_html())


async def health(request: Request) -> JSONResponse:
    """Up or not for anyone; the counts (every account's) for the administrator only."""
    if not is_admin(request):
        return JSONResponse({"status": "ok"})
    directory = request.app.state.services.directory
    return JSONResponse(
        {"status": "ok", "faces": len(directory.faces), "lists": len(directory.lists)}
    )


async def effective_settings(request: Request) -> JSONResponse:
    """The settings this process uses now, secrets hidden."""
    from streams.config import hide_secrets

    admin(request)
    services = request.app.state.services
    return JSONResponse(hide_secrets(services.settings.model_dump(mode="json")))


routes = [
    Route("/v1/settings", effective_settings, methods=["GET"]),
    Route("/v1/openapi.yml", openapi_yaml, methods=["GET"]),
    Route("/v1/docs", docs_page, methods=["GET"]),
    Route("/v1/health", health, methods=["GET"]),
]
