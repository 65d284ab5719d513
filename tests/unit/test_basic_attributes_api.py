"""Basic attributes through the API on the real models: POST /v1/sdk?estimate_basic_attributes=1
and faces made with POST /v1/faces?basic_attr=1 (an image or a warped sample), kept on the face
record, shown by GET /v1/faces/{id} and written to ClickHouse's faces row.

Labelled photos: John Salley (dlib's johns) is a man, astronaut.png is Eileen Collins."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from processors import align
from processors.types import EXPRESSIONS, ImageBGR
from sinks.rows import face_rows
from streams.api.errors import HANDLERS
from streams.api.liveness import routes
from streams.models.modelset import ModelSet
from streams.settings import Settings
from tests.unit.test_api_hostile import FakeServices, make_client
from tests.unit.test_liveness_api import jpeg, scaled

ACCOUNT = {"Luna-Account-Id": str(uuid.uuid4())}
JOHN = "johns/John_Salley/000179_02159509.jpg"
BORDER = 75  # the johns are tight 150x150 chips: YuNet needs context around a face


@pytest.fixture(scope="module")
def models(models_dir: Path) -> ModelSet:
    return ModelSet(models_dir)


@pytest.fixture(scope="module")
def john(testdata_dir: Path) -> ImageBGR:
    chip = np.asarray(cv2.imread(str(testdata_dir / JOHN)), np.uint8)
    framed = cv2.copyMakeBorder(chip, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_REPLICATE)
    return np.asarray(framed, np.uint8)


@pytest.fixture(scope="module")
def astronaut(testdata_dir: Path) -> ImageBGR:
    return np.asarray(cv2.imread(str(testdata_dir / "astronaut.png")), np.uint8)


@pytest.fixture(scope="module")
def tom(testdata_dir: Path) -> ImageBGR:
    """Large enough for Liveness V2's requirements once scaled 2x."""
    image = cv2.imread(str(testdata_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg"))
    return np.asarray(image, np.uint8)


@pytest.fixture
def sdk_client(models: ModelSet) -> TestClient:
    app = Starlette(routes=routes, exception_handlers=HANDLERS)
    app.state.services = SimpleNamespace(settings=Settings(), models=models)
    return TestClient(app)


@pytest.fixture
def services(models: ModelSet) -> FakeServices:
    return FakeServices(Settings(), models)


def post(client: TestClient, path: str, image: ImageBGR, **params: Any) -> Any:
    response = client.post(
        path, content=jpeg(image), params=params, headers={**ACCOUNT, "content-type": "image/jpeg"}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def check(attributes: Any, gender: str) -> None:
    """An adult's attributes of the gender, as BasicAttributes shows them."""
    assert attributes["gender"] == gender
    assert 0.5 <= attributes["gender_probability"] <= 1
    assert 18 <= attributes["age"] <= 80
    assert list(attributes["expressions"]) == list(EXPRESSIONS)
    assert sum(attributes["expressions"].values()) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize(("photo", "gender"), [("john", "male"), ("astronaut", "female")])
def test_sdk_estimates_each_face(
    sdk_client: TestClient, request: pytest.FixtureRequest, photo: str, gender: str
) -> None:
    image = request.getfixturevalue(photo)
    (face,) = post(sdk_client, "/v1/sdk", image, estimate_basic_attributes=1)["faces"]
    check(face["basic_attributes"], gender)
    (plain,) = post(sdk_client, "/v1/sdk", image)["faces"]
    assert "basic_attributes" not in plain and plain["box"] == face["box"]


def test_sdk_estimates_every_face_found(sdk_client: TestClient, john: ImageBGR) -> None:
    two = np.hstack([john, john[:, ::-1]])
    faces = post(sdk_client, "/v1/sdk", two, estimate_basic_attributes=1)["faces"]
    assert len(faces) == 2
    for face in faces:
        check(face["basic_attributes"], "male")


def test_sdk_estimates_the_liveness_face(sdk_client: TestClient, tom: ImageBGR) -> None:
    answer = post(sdk_client, "/v1/sdk", scaled(tom, 2), estimate_liveness=1)
    (face,) = post(
        sdk_client, "/v1/sdk", scaled(tom, 2), estimate_liveness=1, estimate_basic_attributes=1
    )["faces"]
    assert face["liveness"] == answer["faces"][0]["liveness"]
    check(face["basic_attributes"], "male")  # measured: P(male) 0.96, 41 years


def _create(services: FakeServices, image: ImageBGR, **params: Any) -> Any:
    (face,) = post(make_client(services), "/v1/faces", image, **params)["faces"]
    return face


@pytest.mark.parametrize(("photo", "gender"), [("john", "male"), ("astronaut", "female")])
def test_a_face_keeps_its_attributes(
    services: FakeServices, request: pytest.FixtureRequest, photo: str, gender: str
) -> None:
    face = _create(services, request.getfixturevalue(photo), basic_attr=1)
    check(face["basic_attributes"], gender)
    record = services.directory.faces[face["face_id"]]
    assert record["attributes"] == face["basic_attributes"]
    response = make_client(services).get(f"/v1/faces/{face['face_id']}", headers=ACCOUNT)
    assert response.json()["basic_attributes"] == face["basic_attributes"]


def test_a_warped_sample_keeps_its_attributes(
    services: FakeServices, models: ModelSet, john: ImageBGR, astronaut: ImageBGR
) -> None:
    """A warped upload is estimated on the sample itself (measured over the 55 johns: all male,
    ages 3.0 years from the original image's on average, 10 at most)."""
    for image, gender in ((john, "male"), (astronaut, "female")):
        (found,) = models.detector.detect(image)
        sample = align.warp(image, found.landmarks)
        face = _create(services, sample, warped=1, basic_attr=1)
        check(face["basic_attributes"], gender)
        assert services.directory.faces[face["face_id"]]["attributes"] is not None


def test_without_basic_attr_a_face_has_none(services: FakeServices, john: ImageBGR) -> None:
    face = _create(services, john)
    assert face["basic_attributes"] is None
    assert services.directory.faces[face["face_id"]]["attributes"] is None


def test_the_faces_row_holds_them_as_json() -> None:
    attributes = {
        "age": 37.5,
        "gender": "male",
        "gender_probability": 0.99,
        "expressions": dict.fromkeys(EXPRESSIONS, 1 / 7),
    }
    face: dict[str, Any] = {
        "account_id": "a",
        "list_ids": [],
        "user_data": None,
        "event_id": None,
        "sample_id": None,
        "created_at": datetime.now(UTC),
        "descriptors": [],
        "attributes": attributes,
    }
    now = datetime.now(UTC)
    row, _ = face_rows("f", face, now)
    assert json.loads(row["attributes_json"]) == attributes
    assert face_rows("f", {**face, "attributes": None}, now)[0]["attributes_json"] == ""
    tombstone, _ = face_rows("f", None, now)
    assert set(tombstone) == set(row) and tombstone["attributes_json"] == ""
