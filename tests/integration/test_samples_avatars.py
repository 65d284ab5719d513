"""Samples and avatars against the real stack: read at once from ClickHouse, per account, and
deleted with the face that alone held them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.client.http import ApiError, Client
from streams.control.launch import ApiProcess

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def code_of(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.code


def jpeg_shape(data: bytes) -> tuple[int, ...]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return tuple(image.shape)


def test_samples_avatars_and_their_deletion(api: ApiProcess, testdata_dir: Path) -> None:
    photos = read_folder(testdata_dir / "johns" / "John_Salley", IMAGE_EXTENSIONS)
    account = str(uuid.uuid4())
    with (
        Client(api.origin, account_id=account) as client,
        Client(api.origin, account_id=str(uuid.uuid4())) as stranger,
    ):
        (face,) = client.create_faces(photos[0].read_bytes(), avatar=True)
        assert face.sample_id is not None and face.avatar_sample_id == face.sample_id
        sample_id = face.sample_id
        # Stored by the worker's store stage a moment later; then read at once, by id.
        assert eventually(lambda: _readable(client, sample_id))
        sample = client.get_sample(sample_id)
        assert jpeg_shape(sample) == (250, 250, 3)
        assert client.get_avatar(face.face_id) == sample
        assert code_of(lambda: stranger.get_sample(sample_id)) == (404, "sample_not_found")
        assert code_of(lambda: stranger.get_avatar(face.face_id)) == (404, "face_not_found")

        # An avatar set from an image is a sample of its own; the face's sample stays.
        changed = client.set_avatar(face.face_id, photos[1].read_bytes())
        avatar_id = changed.avatar_sample_id
        assert avatar_id is not None and avatar_id != sample_id
        assert eventually(lambda: _readable(client, avatar_id))
        assert client.get_avatar(face.face_id) != sample
        assert client.get_sample(sample_id) == sample

        (plain,) = client.create_faces(photos[2].read_bytes())
        assert code_of(lambda: client.get_avatar(plain.face_id)) == (404, "avatar_not_found")

        # A face from an event shares the event's sample: deleting the face leaves it.
        event = client.send_image(photos[3].read_bytes(), wait=True)
        (event_face,) = event.faces
        assert event_face.sample_id is not None
        kept = client.create_face_from_event(event.event_id)
        assert kept.sample_id == event_face.sample_id

        client.delete_face(face.face_id)
        client.delete_face(kept.face_id)
        assert eventually(lambda: not _readable(client, sample_id))
        assert eventually(lambda: not _readable(client, avatar_id))
        assert client.get_sample(event_face.sample_id)  # the event holds it
        assert _readable(client, plain.sample_id or "")  # another face's, untouched


def _readable(client: Client, sample_id: str) -> bool:
    try:
        client.get_sample(sample_id)
    except ApiError as error:
        if (error.status, error.code) != (404, "sample_not_found"):
            raise
        return False
    return True
