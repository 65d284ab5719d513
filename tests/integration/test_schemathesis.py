"""A bounded schemathesis run against the live API (Kafka, ClickHouse, a worker): every answer
is in the served document (status, content type, schema) and none is a 5xx."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Err
from schemathesis.specs.openapi import checks as openapi_checks

from streams.control.launch import ApiProcess

pytestmark = pytest.mark.integration

ACCOUNT = str(uuid.uuid4())
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


SENT: list[str] = []


def check(case: schemathesis.Case) -> None:
    SENT.append(case.operation.label)
    if case.headers is not None and "Luna-Account-Id" in case.headers:
        case.headers["Luna-Account-Id"] = ACCOUNT  # one account: reads find what writes made
    if case.query and "timeout" in case.query:
        case.query["timeout"] = 1  # wait=1 on an image the worker refuses still answers fast
    case.call_and_validate(checks=CHECKS, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_api_answers_as_its_document_says(api: ApiProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{api.origin}/v1/openapi.json")
    for found in schema.get_all_operations():
        assert not isinstance(found, Err), found  # every operation of the document parses
        operation = found.ok()
        run = settings(
            max_examples=150,
            derandomize=True,  # a fixed seed: the same requests every run
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(case=operation.as_strategy())(check))
        run()
    assert len(SENT) >= 1500, len(SENT)  # a few thousand requests over every operation
    assert len(set(SENT)) == len(list(schema.get_all_operations()))
