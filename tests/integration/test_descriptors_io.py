"""Descriptors in and out: a gallery moves to another account (or deployment) without photos."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import numpy as np
import pytest

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.client.http import ApiError, Candidates, Client, Reference
from streams.control.launch import ApiProcess

pytestmark = pytest.mark.integration


def test_a_list_moves_by_its_descriptors(api: ApiProcess, testdata_dir: Path) -> None:
    people = {
        p.name: read_folder(p, IMAGE_EXTENSIONS) for p in sorted((testdata_dir / "johns").iterdir())
    }
    with Client(api.origin, account_id=str(uuid.uuid4())) as source:
        source_list = source.create_list()
        for name, files in people.items():
            source.create_faces(
                files[0].read_bytes(), list_ids=[source_list], user_data=name, descriptor=True
            )
        exported = source.list_descriptors(source_list)
    assert sorted(d.user_data or "" for d in exported) == sorted(people)
    assert {d.version for d in exported} == {1}
    assert all(len(base64.b64decode(d.vector)) == 128 * 4 for d in exported)

    with Client(api.origin, account_id=str(uuid.uuid4())) as target:
        target_list = target.create_list()
        for d in exported:
            target.create_face_from_descriptors(
                {d.version: base64.b64decode(d.vector)},
                user_data=d.user_data,
                list_ids=[target_list],
            )
        assert target.get_list(target_list).face_count == len(people)
        # A photo the source never saw matches the imported face of its person.
        event = target.send_image(
            people["John_Simm"][6].read_bytes(), list_ids=[target_list], wait=True
        )
        assert event.best_match is not None and event.best_match.user_data == "John_Simm"
        # A raw descriptor as the matcher's reference: the same vector, similarity 1.
        simm = next(d for d in exported if d.user_data == "John_Simm")
        (result,) = target.match(
            [Reference.descriptor(base64.b64decode(simm.vector), 1)],
            Candidates(list_ids=[target_list]),
        )
        assert result.matches[0].user_data == "John_Simm"
        assert result.matches[0].similarity == pytest.approx(1.0, abs=1e-4)

        def refused(call: object) -> tuple[int, str]:
            with pytest.raises(ApiError) as caught:
                call()  # type: ignore[operator]
            return caught.value.status, caught.value.code

        short = np.ones(100, "<f4").tobytes()
        assert refused(lambda: target.create_face_from_descriptors({1: short})) == (
            400,
            "bad_descriptor",
        )
        assert refused(lambda: target.create_face_from_descriptors({7: short})) == (
            400,
            "bad_descriptor",
        )
        zero = np.zeros(128, "<f4").tobytes()
        assert refused(lambda: target.create_face_from_descriptors({1: zero})) == (
            400,
            "bad_descriptor",
        )
        assert refused(
            lambda: target.match(
                [Reference.descriptor(base64.b64decode(simm.vector), 2)],
                Candidates(list_ids=[target_list]),
            )
        ) == (409, "descriptor_version_mismatch")
        assert target.get_list(target_list).face_count == len(people)  # nothing half-made
