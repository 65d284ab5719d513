"""Basic attributes in the pipeline: estimated when the deployment or the image asks, carried to
the event, stored in its row and read back, and filtered by age range and gender."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sinks.rows import event_rows
from streams.api import render
from streams.api.events import accepts, filters
from streams.api.shapes import EventFilters, EventsQuery
from streams.models.modelset import ModelSet
from streams.settings import AttributesSettings, Settings
from streams.worker.testing import InMemoryPipeline
from tests import sink_records
from tests.unit.test_stages import image


@pytest.fixture(scope="module")
def photos(testdata_dir: Path) -> dict[str, bytes]:
    return {
        "man": next((testdata_dir / "johns" / "John_Simm").glob("*.jpg")).read_bytes(),
        "woman": (testdata_dir / "astronaut.png").read_bytes(),
    }


@pytest.mark.parametrize("deployment", [False, True])
def test_estimated_when_the_deployment_or_the_image_asks(
    models_dir: Path, photos: dict[str, bytes], deployment: bool
) -> None:
    settings = Settings(attributes=AttributesSettings(estimate=deployment))
    asks: list[bool | None] = [None, True, False]
    sent = [
        image(photos[who]) | {"estimate_basic_attributes": ask}
        for who in ("man", "woman")
        for ask in asks
    ]
    events = {
        e["context"]["event_id"]: e
        for e in InMemoryPipeline(ModelSet(models_dir), settings).send(sent)
    }
    got = [events[r["context"]["event_id"]]["faces"][0]["attributes"] for r in sent]
    wanted = [deployment, True, False] * 2
    assert [a is not None for a in got] == wanted
    genders = [a["gender"] for a in got if a is not None]
    assert genders == ["male"] * wanted[:3].count(True) + ["female"] * wanted[3:].count(True)
    assert all(18 < a["age"] < 80 and 0.5 <= a["gender_probability"] <= 1 for a in got if a)
    assert all(sum(a["expressions"].values()) == pytest.approx(1, abs=1e-4) for a in got if a)


def attributed(age: float, gender: str) -> dict[str, Any]:
    return {
        "age": age,
        "gender": gender,
        "gender_probability": 0.9,
        "expressions": {"neutral": 0.7, "happy": 0.3},
    }


def test_stored_and_read_back_as_sent() -> None:
    event = sink_records.event("acc", faces=3)
    event["faces"][0]["attributes"] = attributed(31.5, "female")
    event["faces"][2]["attributes"] = attributed(52.0, "male")
    row, _ = event_rows(event, datetime.now(UTC))
    assert row["face_genders"] == ["female", "", "male"]
    assert math.isnan(row["face_ages"][1])
    shown = render.event_from_row(row | {"face_ages": [31.5, math.nan, 52.0]})
    assert [f.basic_attributes for f in shown.faces] == [
        f.basic_attributes for f in render.event_from_record(event).faces
    ]
    assert shown.faces[1].basic_attributes is None
    assert shown.faces[2].basic_attributes is not None
    assert shown.faces[2].basic_attributes.gender == "male"
    # A row stored before the columns existed: empty arrays, no attributes.
    old = row | {"face_ages": [], "face_genders": [], "face_gender_probabilities": []}
    old |= {"face_expressions_json": ""}
    assert [f.basic_attributes for f in render.event_from_row(old).faces] == [None] * 3


@pytest.mark.parametrize(
    ("query", "passes"),
    [
        ({"gender": "male"}, True),
        ({"gender": "female"}, True),
        ({"age_gte": 40}, True),
        ({"age_lte": 30}, True),
        ({"age_gte": 30, "age_lte": 40}, False),  # no face of 30..40
        ({"age_lte": 30, "gender": "male"}, True),  # the man of 25
        ({"age_lte": 30, "gender": "female"}, False),  # the woman is 55: one face, both rules
        ({"age_gte": 50, "gender": "female"}, True),
        ({"age_gte": 50, "gender": "male"}, False),
    ],
)
def test_an_age_range_and_a_gender_select_one_face(query: dict[str, Any], passes: bool) -> None:
    event = sink_records.event("acc", faces=2)
    event["faces"][0]["attributes"] = attributed(25.0, "male")
    event["faces"][1]["attributes"] = attributed(55.0, "female")
    shown = render.event_from_record(event)
    assert accepts(EventFilters(**query), shown) is passes
    conditions, params = filters(EventsQuery(**query), "acc")
    assert "arrayExists((a, g)" in conditions[-1] and params["gender"] == query.get("gender", "")
