"""The four stages on real photos and real models, through the topics' contracts, no broker."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.models.modelset import ModelSet
from streams.settings import DetectionSettings, ImageSettings, Settings
from streams.worker.stages import decode_sample
from streams.worker.testing import InMemoryPipeline

ACCOUNT = "6d071cca-fda5-4a03-84d5-5bea65904480"
OTHER_ACCOUNT = "0dde5158-e643-45a6-8a4d-ad42448a913b"
LIST = "known"


def image(data: bytes, *, account: str = ACCOUNT, **context: object) -> Any:
    import uuid
    from datetime import UTC, datetime

    full = {
        "event_id": str(uuid.uuid4()),
        "account_id": account,
        "created_at": datetime.now(UTC),
        "source": None,
        "list_ids": [LIST],
        "enroll": None,
        "timings": {},
        **context,
    }
    return {
        "context": full,
        "data": data,
        "data_ref": None,
        "min_quality": None,
        "estimate_liveness": None,
    }


@pytest.fixture(scope="module")
def models(models_dir: Path) -> ModelSet:
    return ModelSet(models_dir)


@pytest.fixture(scope="module")
def people(testdata_dir: Path) -> dict[str, list[Path]]:
    return {
        person.name: read_folder(person, IMAGE_EXTENSIONS)
        for person in sorted((testdata_dir / "johns").iterdir())
    }


def enrolled(
    models: ModelSet, people: dict[str, list[Path]], settings: Settings
) -> InMemoryPipeline:
    pipeline = InMemoryPipeline(models, settings)
    events = pipeline.send(
        [
            image(
                files[0].read_bytes(), enroll={"list_id": LIST, "user_data": name, "face_id": None}
            )
            for name, files in people.items()
        ]
    )
    assert [e["status"] for e in events] == ["ok"] * len(people)
    assert len(pipeline.sink["faces"]) == len(people)
    return pipeline


def test_known_people_are_recognised(models: ModelSet, people: dict[str, list[Path]]) -> None:
    pipeline = enrolled(models, people, Settings())
    probes = [(name, f) for name, files in people.items() for f in files[1:]]
    events = pipeline.send([image(f.read_bytes()) for _, f in probes])
    right = 0
    for (name, _), event in zip(probes, events, strict=True):
        assert event["status"] == "ok"
        (face,) = event["faces"]
        liveness = face["liveness"]
        assert liveness is not None  # the default licence, Liveness V2, allows it
        assert 0.0 <= liveness["probability"] <= 1.0
        assert 0.0 <= liveness["quality"] <= 1.0
        right += bool(face["matches"]) and face["matches"][0]["user_data"] == name
    assert right == len(probes)
    # Every detected face left a sample for re-extraction and a 128-d descriptor.
    assert len(pipeline.sink["samples"]) == len(people) + len(probes)
    assert all(len(f["descriptor"]) == 128 * 4 for e in events for f in e["faces"])


def test_accounts_never_match_each_other(models: ModelSet, people: dict[str, list[Path]]) -> None:
    pipeline = enrolled(models, people, Settings())
    files = people["John_Salley"]
    (event,) = pipeline.send([image(files[1].read_bytes(), account=OTHER_ACCOUNT)])
    assert event["status"] == "ok"
    assert event["faces"][0]["matches"] == []


def test_dlib_descriptor_version_recognises_too(
    models: ModelSet, people: dict[str, list[Path]]
) -> None:
    settings = Settings(descriptor={"default_face_descriptor_version": 2})
    pipeline = enrolled(models, people, settings)
    name, files = next(iter(people.items()))
    (event,) = pipeline.send([image(files[3].read_bytes())])
    assert event["descriptor_version"] == 2
    assert event["faces"][0]["matches"][0]["user_data"] == name


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG")
    return out.getvalue()


def bomb_png() -> bytes:
    """A valid PNG header declaring 60000 x 60000 pixels; decoding it would need 10 GiB."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_bad_inputs_end_as_error_events_and_nothing_else_is_lost(
    models: ModelSet, people: dict[str, list[Path]], testdata_dir: Path
) -> None:
    settings = Settings(detection=DetectionSettings(max_faces=3))
    pipeline = enrolled(models, people, settings)
    good = people["John_Salley"][1].read_bytes()
    group = max(
        read_folder(testdata_dir / "faces", IMAGE_EXTENSIONS), key=lambda p: p.stat().st_size
    )
    cases = {
        "empty_image": b"",
        "undecodable_image": b"this is not an image at all" * 10,
        "truncated_image": good[: len(good) // 2],
        "too_many_pixels": bomb_png(),
        "no_face": jpeg(np.full((240, 320, 3), 127, np.uint8)),
        "too_many_faces": group.read_bytes(),
    }
    images = [image(good)] + [image(data) for data in cases.values()] + [image(good)]
    events = pipeline.send(images)
    by_id = {e["context"]["event_id"]: e for e in events}
    assert len(by_id) == len(images)  # every image ended as exactly one event
    codes = [by_id[i["context"]["event_id"]]["error_code"] for i in images]
    assert codes == [None, *cases, None]
    # As under Faust, the runner also wrote one dead letter for each, naming its event.
    letters = [letter for _, letter in pipeline.sink["dead_letters"]]
    assert sorted(letter["error_code"] for letter in letters) == sorted(cases)
    assert {letter["event_id"] for letter in letters} == {
        i["context"]["event_id"] for i in images[1:-1]
    }
    for i in (images[0], images[-1]):
        assert (
            by_id[i["context"]["event_id"]]["faces"][0]["matches"][0]["user_data"] == "John_Salley"
        )


def test_small_faces_are_refused_with_the_size(
    models: ModelSet, people: dict[str, list[Path]]
) -> None:
    settings = Settings(detection=DetectionSettings(min_face_size=400))
    pipeline = InMemoryPipeline(models, settings)
    (event,) = pipeline.send([image(people["John_Salley"][0].read_bytes())])
    assert event["error_code"] == "face_too_small"
    assert "400 px minimum" in str(event["error_message"])


def test_images_over_the_byte_limit_are_refused_before_decoding(
    models: ModelSet, testdata_dir: Path
) -> None:
    photo = testdata_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg"
    limit = photo.stat().st_size - 1
    pipeline = InMemoryPipeline(models, Settings(image=ImageSettings(max_bytes=limit)))
    (event,) = pipeline.send([image(photo.read_bytes())])
    assert event["error_code"] == "image_too_large"
    assert str(limit) in str(event["error_message"])


def test_matchers_keep_serving_the_old_version_until_the_new_gallery_is_complete(
    models: ModelSet, people: dict[str, list[Path]]
) -> None:
    from streams.settings import DescriptorSettings

    old = enrolled(models, people, Settings())  # the known faces have version 1 only
    # No also_extract: the known faces lacking version 2 make version 1 extracted too.
    switched = Settings(descriptor=DescriptorSettings(default_face_descriptor_version=2))
    pipeline = InMemoryPipeline(models, switched, gallery=old.gallery)
    name, files = "John_Shimkus", people["John_Shimkus"]
    (event,) = pipeline.send([image(files[2].read_bytes())])
    (face,) = event["faces"]
    assert event["descriptor_version"] == 2
    assert [d["version"] for d in face["other_descriptors"]] == [1]
    assert face["matched_version"] == 1  # the version 2 gallery is empty yet
    assert face["matches"][0]["user_data"] == name

    # Re-extraction gives every known face a version 2 descriptor (old ones kept) ...
    for face_id, record in list(old.sink["faces"]):
        assert face_id is not None
        sample = next(v for k, v in old.sink["samples"] if k == record["sample_id"])
        vector = models.extractor(2).extract([decode_sample(sample["image"])])[0]
        extra = {"version": 2, "vector": vector.astype("<f4").tobytes()}
        old.gallery.apply(face_id, record | {"descriptors": [*record["descriptors"], extra]})
    assert old.gallery.coverage(ACCOUNT, 2) == (len(people), len(people))
    # ... and then the matchers serve version 2.
    (event,) = pipeline.send([image(files[2].read_bytes())])
    assert event["faces"][0]["matched_version"] == 2
    assert event["faces"][0]["matches"][0]["user_data"] == name
    assert event["faces"][0]["other_descriptors"] == []  # version 1 is no longer needed
