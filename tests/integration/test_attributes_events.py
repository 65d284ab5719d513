"""Basic attributes through the real pipeline into ClickHouse, and GET /v1/events by them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.client.http import Client
from streams.control.launch import ApiProcess

pytestmark = pytest.mark.integration


def test_an_image_asking_for_attributes_is_stored_and_found_by_them(
    api: ApiProcess, testdata_dir: Path
) -> None:
    man = next((testdata_dir / "johns" / "John_Shimkus").glob("*.jpg")).read_bytes()
    woman = (testdata_dir / "astronaut.png").read_bytes()
    with Client(api.origin, account_id=str(uuid.uuid4())) as client:
        his = client.send_image(man, estimate_basic_attributes=True, wait=True)
        hers = client.send_image(woman, estimate_basic_attributes=True, wait=True)
        plain = client.send_image(man, wait=True)  # the deployment's default: none
        (his_face,), (her_face,) = his.faces, hers.faces
        assert his_face.basic_attributes is not None and her_face.basic_attributes is not None
        assert (his_face.basic_attributes.gender, her_face.basic_attributes.gender) == (
            "male",
            "female",
        )
        assert plain.faces[0].basic_attributes is None
        stored = client.get_event(his.event_id).faces[0].basic_attributes  # from ClickHouse
        assert stored is not None and stored.gender == "male"
        assert stored.age == pytest.approx(his_face.basic_attributes.age, abs=1e-3)
        assert stored.expressions == pytest.approx(his_face.basic_attributes.expressions, abs=1e-5)

        def found(**filters: object) -> set[str]:
            return {e.event_id for e in client.list_events(**filters).items}  # type: ignore[arg-type]

        assert found(gender="male") == {his.event_id}
        assert found(gender="female") == {hers.event_id}
        age = his_face.basic_attributes.age
        assert found(age_gte=age - 1, age_lte=age + 1, gender="male") == {his.event_id}
        assert found(age_gte=age - 1, age_lte=age + 1, gender="female") == (
            {hers.event_id} if abs(her_face.basic_attributes.age - age) <= 1 else set()
        )
        assert found() == {his.event_id, hers.event_id, plain.event_id}
