"""The Python client and `facestream upload` against the real API, worker and stack."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.client.http import ApiError, AsyncClient, Candidates, Client, Reference
from streams.control.launch import REPO, ApiProcess

pytestmark = pytest.mark.integration


def johns(testdata_dir: Path) -> dict[str, list[Path]]:
    return {
        p.name: read_folder(p, IMAGE_EXTENSIONS) for p in sorted((testdata_dir / "johns").iterdir())
    }


def test_enroll_then_match_with_the_sync_client(api: ApiProcess, testdata_dir: Path) -> None:
    people = johns(testdata_dir)
    with Client(api.origin, account_id=str(uuid.uuid4())) as client:
        list_id = client.create_list(user_data="staff")
        for name, files in people.items():
            (face,) = client.create_faces(files[0].read_bytes(), list_ids=[list_id], user_data=name)
            assert face.list_ids == (list_id,)
        event = client.send_image(
            people["John_Shimkus"][3].read_bytes(), list_ids=[list_id], wait=True
        )
        assert event.best_match is not None and event.best_match.user_data == "John_Shimkus"
        (result,) = client.match(
            [Reference.image(people["John_Simm"][4].read_bytes())], Candidates(list_ids=[list_id])
        )
        assert result.matches[0].user_data == "John_Simm"
        assert client.get_list(list_id).face_count == len(people)
        with pytest.raises(ApiError) as refused:
            client.get_face(str(uuid.uuid4()))
        assert (refused.value.status, refused.value.code) == (404, "face_not_found")


async def test_the_async_client_sees_the_same(api: ApiProcess, testdata_dir: Path) -> None:
    people = johns(testdata_dir)
    async with AsyncClient(api.origin, account_id=str(uuid.uuid4())) as client:
        list_id = await client.create_list()
        (face,) = await client.create_faces(
            people["John_Savage"][0].read_bytes(), list_ids=[list_id]
        )
        event_id = await client.send_image(
            people["John_Savage"][2].read_bytes(), list_ids=[list_id]
        )
        assert uuid.UUID(event_id)
        (result,) = await client.match(
            [Reference.face(face.face_id)], Candidates(face_ids=[face.face_id])
        )
        assert result.matches[0].face_id == face.face_id


def test_upload_a_mixed_folder(api: ApiProcess, testdata_dir: Path, tmp_path: Path) -> None:
    people = johns(testdata_dir)
    source = tmp_path / "photos"
    source.mkdir()
    for name, files in people.items():
        shutil.copy(files[0], source / f"{name}.jpg")
    Image.fromarray(np.full((300, 300, 3), 120, np.uint8)).save(source / "wall.png")
    shutil.copy(testdata_dir / "faces" / "2008_002506.jpg", source / "group.JPG")  # three faces
    (source / "broken.jpg").write_bytes(people["John_Simm"][1].read_bytes()[:300])
    (source / "notes.txt").write_text("not an image")
    account = str(uuid.uuid4())

    def upload() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "upload",
                "--account-id",
                account,
                "--source",
                str(source),
                "--warped",
                "0",
                "--origin",
                api.origin,
                "--name-as-userdata",
                "1",
                "--concurrency",
                "4",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = upload()
    assert first.returncode == 1, first.stdout + first.stderr  # some images failed
    assert f"done {len(people)}, skipped 0, failed 3" in first.stdout
    done = [json.loads(line) for line in (source / "_success_log.txt").read_text().splitlines()]
    errors = [json.loads(line) for line in (source / "_error_log.txt").read_text().splitlines()]
    assert sorted(r["image name"] for r in done) == sorted(f"{n}.jpg" for n in people)
    assert all(len(r["face id"]) == 1 for r in done)
    codes = {r["image name"]: r["error"]["error_code"] for r in errors}
    assert codes == {
        "wall.png": "no_face",
        "group.JPG": "multiple_faces",
        "broken.jpg": "truncated_image",
    }
    with Client(api.origin, account_id=account) as client:
        (face_list,) = client.list_lists().items
        assert face_list.face_count == len(people)
        face = client.get_face(done[0]["face id"][0])
        assert face.user_data == done[0]["image name"]
    second = upload()  # the enrolled ones are skipped; only the failures are tried again
    assert len((source / "_success_log.txt").read_text().splitlines()) == len(people)
    assert f"done 0, skipped {len(people)}, failed 3" in second.stdout


def docstring_example(module_doc: str) -> str:
    """The code block of a module docstring (after its `::`), dedented."""
    block = module_doc.split("::\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def test_the_client_docstring_example_runs(
    api: ApiProcess, testdata_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As written, right after `send_image(wait=True)` the event is a matcher reference."""
    import streams.client.http as http

    people = johns(testdata_dir)
    shutil.copy(people["John_Salley"][0], tmp_path / "alice.jpg")
    shutil.copy(people["John_Salley"][5], tmp_path / "door.jpg")
    code = docstring_example(http.__doc__ or "")
    assert "api.match([Reference.event(event.event_id)]" in code
    code = code.replace('"http://127.0.0.1:5000"', repr(api.origin)).replace(
        "6d071cca-fda5-4a03-84d5-5bea65904480", str(uuid.uuid4())
    )
    monkeypatch.chdir(tmp_path)
    printed: list[tuple[Any, ...]] = []
    exec(  # its print()s are what the test reads
        compile(code, "streams/client/http.py docstring", "exec"),
        {"print": lambda *args: printed.append(args)},
    )
    (best, similarity), (matches,) = printed
    assert best == "alice" and similarity > 0.5
    assert matches[0][0] == "alice"


def test_a_waited_event_is_readable_at_once(api: ApiProcess, testdata_dir: Path) -> None:
    people = johns(testdata_dir)
    with Client(api.origin, account_id=str(uuid.uuid4())) as client:
        for photo in people["John_Schneider"][:3]:
            event = client.send_image(photo.read_bytes(), wait=True)
            assert client.get_event(event.event_id).event_id == event.event_id


# LUNA's folder_uploader command line, as the reference gives it.
SEED_COMMAND = (
    "python3.7 folder_uploader.py --account_id 6d071cca-fda5-4a03-84d5-5bea65904480 "
    '--source "Images/" --warped 0 --descriptor 1 --origin http://127.0.0.1:5000 --api 6 '
    "--avatar 1 --list_id 0dde5158-e643-45a6-8a4d-ad42448a913b --name_as_userdata 1"
)


@pytest.mark.parametrize("descriptor", ["1", "0"])
def test_the_seeds_uploader_command_line_runs_verbatim(
    api: ApiProcess, testdata_dir: Path, tmp_path: Path, descriptor: str
) -> None:
    """Only the ids, the origin and --descriptor are ours; `facestream upload` stands for
    `python3.7 folder_uploader.py`. Without --basic_attr its default, 1, applies: every john
    keeps his basic attributes."""
    people = johns(testdata_dir)
    (tmp_path / "Images").mkdir()
    for name, files in people.items():
        shutil.copy(files[0], tmp_path / "Images" / f"{name}.jpg")
    account = str(uuid.uuid4())
    with Client(api.origin, account_id=account) as client:
        list_id = client.create_list(user_data="seed")
    argv = shlex.split(
        SEED_COMMAND.replace("6d071cca-fda5-4a03-84d5-5bea65904480", account)
        .replace("0dde5158-e643-45a6-8a4d-ad42448a913b", list_id)
        .replace("http://127.0.0.1:5000", api.origin)
        .replace("--descriptor 1", f"--descriptor {descriptor}")
    )
    assert argv[:2] == ["python3.7", "folder_uploader.py"]
    ran = subprocess.run(
        [sys.executable, "-m", "streams.cli", "upload", *argv[2:]],
        cwd=tmp_path,  # "Images/" is relative, as in the reference
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"done {len(people)}, skipped 0, failed 0, list id {list_id}" in ran.stdout
    log = (tmp_path / "Images" / "_success_log.txt").read_text(encoding="utf-8").splitlines()
    face_ids = [face_id for line in log for face_id in json.loads(line)["face id"]]
    assert len(face_ids) == len(people)
    with Client(api.origin, account_id=account) as client:
        assert client.get_list(list_id).face_count == len(people)
        faces = [client.get_face(face_id) for face_id in face_ids]
        attributes = [face.basic_attributes for face in faces]
        assert all(f.avatar_sample_id == f.sample_id is not None for f in faces)  # --avatar 1
        event = client.send_image(
            people["John_Simm"][4].read_bytes(), list_ids=[list_id], wait=True
        )
    # Measured: P(male) 0.97-1.00, ages 40-63.
    assert [a.gender if a is not None else None for a in attributes] == ["male"] * len(people)
    assert all(a is not None and 18 <= a.age <= 80 for a in attributes)
    if descriptor == "1":
        assert event.best_match is not None and event.best_match.user_data == "John_Simm.jpg"
    else:  # enrolled without descriptors: nothing to match until a re-extraction
        assert event.best_match is None and len(event.faces) == 1
        assert "match nothing until a re-extraction" in ran.stderr


def test_an_image_sent_without_liveness_is_stored_without(
    api: ApiProcess, testdata_dir: Path
) -> None:
    photo = johns(testdata_dir)["John_Savage"][1].read_bytes()
    with Client(api.origin, account_id=str(uuid.uuid4())) as client:
        without = client.send_image(photo, estimate_liveness=False, wait=True)
        default = client.send_image(photo, wait=True)  # the default licence: Liveness V2
        assert [f.liveness for f in without.faces] == [None]
        assert default.faces[0].liveness is not None
        assert client.get_event(without.event_id).faces[0].liveness is None  # NaN in ClickHouse
        assert client.get_event(default.event_id).faces[0].liveness == default.faces[0].liveness
        live = client.list_events(liveness_gte=0.0).items
        assert [e.event_id for e in live] == [default.event_id]  # not estimated passes no filter
