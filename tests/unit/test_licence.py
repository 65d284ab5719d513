"""Liveness in the pipeline follows the licence as the reference's other resources do: only
Liveness V2 serves it; asked for under a licence that forbids it, an error (403 over HTTP, an
error event through Kafka), and the stage estimates nothing it was not allowed to."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from processors.errors import ProcessingError
from streams.api.app import ROUTES
from streams.api.errors import HANDLERS
from streams.control.licence import liveness_version
from streams.models.modelset import ModelSet
from streams.settings import AdditionalServicesUsage, LicenseSettings, Settings
from streams.worker.testing import InMemoryPipeline
from tests.unit.test_api_ingest_ack import Broker, IngestServices
from tests.unit.test_stages import image

# (licence, V1 service option) -> the pipeline's version, or the refusal's code
TABLE = [
    (0, False, "liveness_not_licensed"),
    (0, True, "liveness_not_licensed"),
    (1, True, "liveness_v1_not_on_images"),
    (1, False, "liveness_v1_not_on_images"),
    (2, True, "liveness_v1_option_conflict"),
    (2, False, "v2"),
]


@pytest.mark.parametrize(("license", "option", "outcome"), TABLE)
def test_the_pipeline_is_served_like_sdk(license: int, option: bool, outcome: str) -> None:
    if outcome == "v2":
        assert liveness_version("images", license, option) == "v2"
        return
    with pytest.raises(ProcessingError) as refused:
        liveness_version("images", license, option)
    assert refused.value.code == outcome
    assert "liveness in the pipeline needs license.liveness=2" in refused.value.message


def settings(license: int, option: bool = False) -> Settings:
    return Settings(
        license=LicenseSettings(liveness=license),
        additional_services_usage=AdditionalServicesUsage(liveness=option),
    )


@pytest.mark.parametrize(("license", "option", "outcome"), TABLE)
def test_the_stage_estimates_only_what_the_licence_allows(
    models_dir: Path, testdata_dir: Path, license: int, option: bool, outcome: str
) -> None:
    models = ModelSet(models_dir)
    estimated: list[int] = []
    estimate = models.liveness.estimate

    def counting(crops: list[Any], qualities: list[float]) -> Any:
        estimated.append(len(crops))
        return estimate(crops, qualities)

    models.liveness.estimate = counting  # type: ignore[method-assign]
    photo = next((testdata_dir / "johns" / "John_Simm").glob("*.jpg")).read_bytes()
    asks: list[bool | None] = [None, False, True]
    sent = [image(photo) | {"estimate_liveness": ask} for ask in asks]
    events = {
        e["context"]["event_id"]: e
        for e in InMemoryPipeline(models, settings(license, option)).send(sent)
    }
    unasked, declined, asked = (events[r["context"]["event_id"]] for r in sent)
    assert declined["status"] == "ok" and declined["faces"][0]["liveness"] is None
    if outcome == "v2":
        assert unasked["faces"][0]["liveness"] is not None
        assert asked["faces"][0]["liveness"] is not None
        assert sum(estimated) == 2
    else:
        assert unasked["status"] == "ok" and unasked["faces"][0]["liveness"] is None
        assert (asked["status"], asked["error_code"]) == ("error", outcome)
        assert sum(estimated) == 0  # nothing estimated that was not licensed


async def test_asking_for_liveness_over_http_under_a_forbidding_licence_is_403() -> None:
    app = Starlette(routes=ROUTES, exception_handlers=HANDLERS)
    broker = Broker()
    app.state.services = IngestServices(broker, settings=settings(0))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Luna-Account-Id": str(uuid.uuid4()), "content-type": "image/jpeg"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        refused = await client.post(
            "/v1/images", params={"estimate_liveness": 1}, content=b"jpeg", headers=headers
        )
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "liveness_not_licensed"
    assert broker.values == []  # refused before anything was sent
