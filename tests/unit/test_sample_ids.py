"""A redelivered image makes the same sample ids and enrolled face ids: its samples and faces
replace, never add, on the compacted topics (and their descriptor rows in ClickHouse)."""

from __future__ import annotations

from pathlib import Path

from streams.models.modelset import ModelSet
from streams.settings import Settings
from streams.worker.stages import derived_id
from streams.worker.testing import InMemoryPipeline
from tests.unit.test_stages import image


def test_a_redelivered_image_has_the_same_sample_ids(models_dir: Path, testdata_dir: Path) -> None:
    pipeline = InMemoryPipeline(ModelSet(models_dir), Settings())
    # Two faces of one event, then the same message again as a redelivery would bring it.
    record = image((testdata_dir / "faces" / "2008_002470.jpg").read_bytes())
    first, again = pipeline.send([record]), pipeline.send([record])
    event_id = record["context"]["event_id"]
    ids = [derived_id("sample", event_id, face["geometry"]["index"]) for face in first[0]["faces"]]
    assert len(ids) == len(set(ids)) >= 2
    for event in (first[0], again[0]):
        assert [face["sample_id"] for face in event["faces"]] == ids
    assert [key for key, _ in pipeline.sink["samples"]] == ids + ids


def test_a_redelivered_enrollment_enrolls_the_same_face(
    models_dir: Path, testdata_dir: Path
) -> None:
    pipeline = InMemoryPipeline(ModelSet(models_dir), Settings())
    photo = next((testdata_dir / "johns").rglob("*.jpg")).read_bytes()
    record = image(photo, enroll={"face_id": None, "list_id": "list-1", "user_data": "x"})
    first, again = pipeline.send([record]), pipeline.send([record])
    (face_id,) = {event["faces"][0]["enrolled_face_id"] for event in (first[0], again[0])}
    index = first[0]["faces"][0]["geometry"]["index"]
    assert face_id == derived_id("face", record["context"]["event_id"], index)
    assert [key for key, _ in pipeline.sink["faces"]] == [face_id, face_id]
