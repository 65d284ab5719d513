"""The routes the API serves and the OpenAPI document generated from the same table agree."""

from __future__ import annotations

from starlette.routing import Route

from streams.api.app import API, ROUTES
from streams.api.docs import METHODS, render_html
from streams.api.spec import document


def test_routes_and_spec_agree() -> None:
    served = {
        (route.path, method.lower())
        for route in ROUTES
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method)
        for path, ops in document(API)["paths"].items()
        for method in ops
        if method in METHODS
    }
    served -= {("/v1/openapi.yml", "get"), ("/v1/openapi.json", "get"), ("/v1/docs", "get")}
    assert served == documented


def test_every_reference_in_the_spec_resolves() -> None:
    spec = document(API)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                _, section, kind, name = ref.split("/")
                assert name in spec[section][kind], ref
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)


def test_the_html_page_lists_every_operation() -> None:
    spec = document(API)
    page = render_html(spec)
    for path, ops in spec["paths"].items():
        assert f"<code>{path}</code>" in page
        for method in ops:
            if method in METHODS:
                assert f"<span class='{method}'>{method.upper()}</span>" in page
