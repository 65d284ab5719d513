"""POST /v1/liveness and /v1/sdk on the real models: the licence tables, each requirement refused
through the API, a live photo passing, and the request errors."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.testclient import TestClient

from streams.api.errors import HANDLERS
from streams.api.liveness import routes
from streams.models.modelset import ModelSet
from streams.settings import (
    AdditionalServicesUsage,
    ApiSettings,
    LicenseSettings,
    LivenessSettings,
    Settings,
)

Image = npt.NDArray[np.uint8]
MakeClient = Callable[..., TestClient]
ACCOUNT = {"Luna-Account-Id": str(uuid.uuid4())}


@pytest.fixture(scope="module")
def models(models_dir: Path) -> ModelSet:
    return ModelSet(models_dir)


@pytest.fixture
def client(models: ModelSet) -> MakeClient:
    """A client of an app with only these routes, under the given licence and settings."""

    def make(license: int = 2, option: bool = False, **sections: Any) -> TestClient:
        app = Starlette(routes=routes, exception_handlers=HANDLERS)
        settings = Settings(
            license=LicenseSettings(liveness=license),
            additional_services_usage=AdditionalServicesUsage(liveness=option),
            **sections,
        )
        app.state.services = SimpleNamespace(settings=settings, models=models)
        return TestClient(app)

    return make


@pytest.fixture(scope="module")
def tom(testdata_dir: Path) -> Image:
    """565x800, one frontal (smiling) face: box 412x553 at (81, 177), 199 px between the eyes."""
    image = cv2.imread(str(testdata_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg"))
    return np.asarray(image, np.uint8)


def scaled(image: Image, factor: float) -> Image:
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation))


def on_canvas(image: Image, width: int, height: int) -> Image:
    """`image` centred on a grey width x height canvas."""
    canvas = np.full((height, width, 3), 128, np.uint8)
    y, x = (height - image.shape[0]) // 2, (width - image.shape[1]) // 2
    canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    return canvas


def jpeg(image: Image) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


QUALITY_PARTS = ("blur", "dark", "light", "resolution", "blockiness", "pose", "faceness")


def post(client: TestClient, path: str, image: Image, **params: Any) -> Any:
    return client.post(
        path, content=jpeg(image), params=params, headers={**ACCOUNT, "content-type": "image/jpeg"}
    )


def error_code(response: Any) -> str:
    code: str = response.json()["error_code"]
    return code


# --- The licence tables of the reference, row by row, side by side: (licence, option) and the
# outcome of /v1/liveness, then of /v1/sdk. A liveness version answers 200, an error code 403.

LICENCE_TABLES = [
    (0, True, "liveness_not_licensed", "liveness_not_licensed"),
    (0, False, "liveness_not_licensed", "liveness_not_licensed"),
    (1, True, "v1", "liveness_v1_not_on_sdk"),
    (1, False, "liveness_v1_disabled", "liveness_v1_not_on_sdk"),
    (2, True, "liveness_v1_option_conflict", "liveness_v1_option_conflict"),
    (2, False, "v2", "v2"),
]
VERSIONS = ("v1", "v2")


@pytest.mark.parametrize(("license", "option", "outcome"), [row[:3] for row in LICENCE_TABLES])
def test_liveness_licence_table(
    client: MakeClient, tom: Image, license: int, option: bool, outcome: str
) -> None:
    response = post(client(license, option), "/v1/liveness", scaled(tom, 2))
    assert response.status_code == (200 if outcome in VERSIONS else 403)
    assert (
        response.json()["version"] if response.status_code == 200 else error_code(response)
    ) == outcome


@pytest.mark.parametrize(
    ("license", "option", "outcome"), [(*row[:2], row[3]) for row in LICENCE_TABLES]
)
def test_sdk_licence_table(
    client: MakeClient, tom: Image, license: int, option: bool, outcome: str
) -> None:
    response = post(client(license, option), "/v1/sdk", scaled(tom, 2), estimate_liveness=1)
    assert response.status_code == (200 if outcome in VERSIONS else 403)
    if response.status_code == 200:
        (face,) = response.json()["faces"]
        assert face["liveness"]["version"] == outcome
    else:
        assert error_code(response) == outcome


def test_the_licence_is_checked_before_the_body(client: MakeClient) -> None:
    response = client(0).post(
        "/v1/liveness", content=b"not an image", headers={**ACCOUNT, "content-type": "image/jpeg"}
    )
    assert response.status_code == 403
    assert (
        "license.liveness=1 with additional_services_usage.liveness=true" in response.json()["desc"]
    )


def test_sdk_without_liveness_needs_no_licence(client: MakeClient, tom: Image) -> None:
    two = np.hstack([scaled(tom, 2)] * 2)
    response = post(client(0), "/v1/sdk", two)
    assert response.status_code == 200
    faces = response.json()["faces"]
    assert len(faces) == 2
    assert all("liveness" not in face and len(face["landmarks"]) == 10 for face in faces)


# --- A live photo passes.


def test_a_live_photo_passes_v2(client: MakeClient, tom: Image) -> None:
    response = post(client(2, False), "/v1/liveness", scaled(tom, 2))
    assert response.status_code == 200
    answer = response.json()
    assert answer["version"] == "v2"
    assert "meta" not in answer
    assert answer["liveness"] == {
        "prediction": "real",
        "probability": pytest.approx(1.0, abs=0.01),
        "quality": pytest.approx(1.0, abs=0.01),
        "quality_parts": dict.fromkeys(QUALITY_PARTS, pytest.approx(1.0, abs=0.01)),
        "probability_threshold": 0.5,
        "quality_threshold": 0.5,
    }
    assert answer["face"] == {
        "x": pytest.approx(162, abs=5),
        "y": pytest.approx(353, abs=5),
        "width": pytest.approx(823, abs=10),
        "height": pytest.approx(1106, abs=10),
        "score": pytest.approx(0.93, abs=0.03),
    }


def test_the_sdk_answers_box_landmarks_and_v2(client: MakeClient, tom: Image) -> None:
    (face,) = post(client(), "/v1/sdk", scaled(tom, 2), estimate_liveness=1).json()["faces"]
    assert face["box"] == face["liveness"]["face"]
    assert len(face["landmarks"]) == 10
    assert face["liveness"]["liveness"]["prediction"] == "real"


def test_a_live_photo_passes_v1_with_its_os(client: MakeClient, tom: Image) -> None:
    response = client(1, True).post(
        "/v1/liveness",
        files={"image": ("tom.jpg", jpeg(tom), "image/jpeg")},
        data={"meta": json.dumps({"OS": "ANDROID"})},
        headers=ACCOUNT,
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["version"] == "v1"
    assert answer["meta"] == {"OS": "ANDROID"}
    assert answer["liveness"]["prediction"] == "real"


def test_v1_os_from_the_query_or_unknown(client: MakeClient, tom: Image) -> None:
    v1 = client(1, True)
    assert post(v1, "/v1/liveness", tom, OS="IOS").json()["meta"] == {"OS": "IOS"}
    assert post(v1, "/v1/liveness", tom).json()["meta"] == {"OS": "UNKNOWN"}


def test_a_probability_under_its_threshold_is_spoof(client: MakeClient, tom: Image) -> None:
    strict = client(liveness=LivenessSettings(threshold=1.0))
    liveness = post(strict, "/v1/liveness", scaled(tom, 2)).json()["liveness"]
    assert liveness["probability"] < 1.0
    assert liveness["prediction"] == "spoof"


def test_a_quality_under_its_threshold_is_spoof(client: MakeClient, tom: Image) -> None:
    any_probability = client(liveness=LivenessSettings(threshold=0.0))
    # Sigma 3 px of the 1130 px wide photo: blur, measured on the original pixels.
    blurred = np.asarray(cv2.GaussianBlur(scaled(tom, 2), (0, 0), 3), np.uint8)
    liveness = post(any_probability, "/v1/liveness", blurred).json()["liveness"]
    assert liveness["quality"] == liveness["quality_parts"]["blur"] < 0.5
    assert liveness["prediction"] == "spoof"


# --- Each requirement, refused through the API.


def rotated(image: Image, degrees: float) -> Image:
    """`image` on a grey 1400x1400 canvas, turned `degrees` counterclockwise about its centre."""
    turn = cv2.getRotationMatrix2D((700, 700), degrees, 1.0)
    canvas = on_canvas(image, 1400, 1400)
    return np.asarray(cv2.warpAffine(canvas, turn, (1400, 1400), borderValue=(128, 128, 128)))


def grey(width: int, height: int) -> Image:
    return np.full((height, width, 3), 128, np.uint8)


@pytest.mark.parametrize(
    ("license", "make", "code", "message"),
    [
        (1, lambda t: scaled(t, 0.5), "liveness_image_too_small", "image is 282x400, Liveness V1"),
        (2, lambda t: t, "liveness_image_too_small", "image is 565x800, Liveness V2 needs"),
        (
            1,
            lambda t: t[:, 65:],
            "liveness_face_near_border",
            # cv2.FaceDetectorYN at this image's size puts the box at x = 5.3
            "face is [4-7] px from the left border, Liveness V1 needs at least 25",
        ),
        (
            2,
            lambda t: scaled(t, 2)[:, 160:],
            "liveness_face_near_border",
            "face is [0-8] px from the left border, Liveness V2 needs at least 10",
        ),
        (
            1,
            lambda t: np.hstack([t, t]),
            "liveness_several_faces",
            "2 faces found, Liveness V1 needs exactly one",
        ),
        (
            2,
            lambda t: np.hstack([scaled(t, 2)] * 2),
            "liveness_several_faces",
            "2 faces found, Liveness V2",
        ),
        (
            1,
            lambda t: on_canvas(scaled(t, 0.35), 640, 480),
            "liveness_eye_distance_too_small",
            "eye distance is 7[0-9] px, Liveness V1 needs at least 90 px",
        ),
        (
            2,
            lambda t: on_canvas(scaled(t, 0.3), 1280, 720),
            "liveness_face_too_small",
            "face is 1[2-3][0-9] px, Liveness V2",
        ),
        # Turned 40 degrees: the 68-point pose reads the turn (YuNet's five points read 27).
        (
            2,
            lambda t: rotated(t, -40),
            "liveness_roll_too_large",
            r"head roll is (3[5-9]|4[0-5])\.[0-9] degrees",
        ),
        (1, lambda t: grey(640, 480), "no_face", "no face found"),
        (2, lambda t: grey(1280, 720), "no_face", "no face found"),
    ],
    ids=[
        "v1-resolution",
        "v2-resolution",
        "v1-padding",
        "v2-padding",
        "v1-several-faces",
        "v2-several-faces",
        "v1-eye-distance",
        "v2-face-size",
        "v2-roll",
        "v1-no-face",
        "v2-no-face",
    ],
)
def test_requirements_refused(
    client: MakeClient,
    tom: Image,
    license: int,
    make: Callable[[Image], Image],
    code: str,
    message: str,
) -> None:
    response = post(client(license, license == 1), "/v1/liveness", make(tom))
    assert response.status_code == 400
    assert error_code(response) == code
    assert re.search(message, response.json()["desc"]), response.json()["desc"]


def test_sdk_liveness_applies_the_v2_requirements(client: MakeClient, tom: Image) -> None:
    response = post(client(), "/v1/sdk", np.hstack([scaled(tom, 2)] * 2), estimate_liveness=1)
    assert response.status_code == 400
    assert error_code(response) == "liveness_several_faces"


# --- Request errors.


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "account_id_missing"),
        ({"Luna-Account-Id": "not-a-uuid"}, "account_id_malformed"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/liveness", "/v1/sdk"])
def test_the_account_is_required(
    client: MakeClient, tom: Image, path: str, headers: dict[str, str], code: str
) -> None:
    response = client().post(
        path, content=jpeg(tom), headers={**headers, "content-type": "image/jpeg"}
    )
    assert response.status_code == 400
    assert error_code(response) == code


@pytest.mark.parametrize("path", ["/v1/liveness", "/v1/sdk"])
def test_wrong_content_type(client: MakeClient, path: str) -> None:
    response = client().post(path, content=b"{}", headers={**ACCOUNT, "content-type": "text/plain"})
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


@pytest.mark.parametrize("path", ["/v1/liveness", "/v1/sdk"])
def test_body_over_the_limit(client: MakeClient, path: str) -> None:
    small = client(api=ApiSettings(max_body_bytes=1024))
    response = small.post(
        path, content=b"x" * 2048, headers={**ACCOUNT, "content-type": "image/jpeg"}
    )
    assert response.status_code == 413
    assert error_code(response) == "body_too_large"


def test_an_undecodable_image(client: MakeClient) -> None:
    response = client().post(
        "/v1/liveness", content=b"x" * 2048, headers={**ACCOUNT, "content-type": "image/jpeg"}
    )
    assert response.status_code == 400
    assert error_code(response) == "undecodable_image"


@pytest.mark.parametrize(
    ("meta", "query", "code"),
    [
        ("{not json", None, "bad_meta"),
        ('["IOS"]', None, "bad_meta"),
        ('{"OS": "IOS", "device": "x"}', None, "bad_meta"),
        ('{"OS": "WINDOWS"}', None, "bad_os"),
        ('{"OS": 1}', None, "bad_os"),
        (None, "ios", "bad_os"),
        ('{"OS": "IOS"}', "ANDROID", "bad_os"),
    ],
)
def test_bad_os_or_meta(
    client: MakeClient, tom: Image, meta: str | None, query: str | None, code: str
) -> None:
    response = client(1, True).post(
        "/v1/liveness",
        params={"OS": query} if query else {},
        files={"image": ("tom.jpg", jpeg(tom), "image/jpeg")},
        data={"meta": meta} if meta else {},
        headers=ACCOUNT,
    )
    assert response.status_code == 400
    assert error_code(response) == code


def test_bad_estimate_liveness_flag(client: MakeClient, tom: Image) -> None:
    response = post(client(), "/v1/sdk", tom, estimate_liveness=2)
    assert response.status_code == 400
    assert error_code(response) == "bad_parameter"


@pytest.mark.parametrize(("turn", "code"), [(0, None), (-40, "liveness_roll_too_large")])
def test_a_face_turned_in_the_image_is_measured_as_turned(
    client: MakeClient, tom: Image, turn: int, code: str | None
) -> None:
    """The issue's case: turned 40 degrees, the five points read a 24 degree roll, within V1's
    30; the 68-point pose reads the turn."""
    response = post(client(1, True), "/v1/liveness", rotated(tom, turn))
    if code is None:
        assert response.status_code == 200, response.text
    else:
        assert (response.status_code, error_code(response)) == (400, code), response.text
        assert re.search(r"roll is -?(3[5-9]|4[0-5])\.", response.json()["desc"]), response.text


def test_the_configurable_requirements_come_from_the_settings(
    client: MakeClient, tom: Image
) -> None:
    """liveness.v1_min_eye_distance (never under 80) and v1/v2_min_padding."""
    near_border = scaled(tom, 2)[:, 160:]  # face 4 px from the left border
    refused = post(client(2, False), "/v1/liveness", near_border)
    assert error_code(refused) == "liveness_face_near_border"
    lenient = LivenessSettings(v2_min_padding=4)
    answer = post(client(2, False, liveness=lenient), "/v1/liveness", near_border)
    assert answer.status_code == 200, answer.text  # the box is 4.1 px from the border
    small = on_canvas(scaled(tom, 0.4), 640, 480)  # 82 px between the eyes
    default = post(client(1, True), "/v1/liveness", small)
    assert error_code(default) == "liveness_eye_distance_too_small"
    assert "needs at least 90 px" in default.json()["desc"]
    eighty = LivenessSettings(v1_min_eye_distance=80)
    assert post(client(1, True, liveness=eighty), "/v1/liveness", small).status_code == 200
    with pytest.raises(ValidationError):
        LivenessSettings(v1_min_eye_distance=79)
