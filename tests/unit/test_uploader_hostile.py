"""`facestream upload` on hostile folders: a file name that is not UTF-8, a link leading out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streams.client.uploader import ERROR_LOG, SUCCESS_LOG
from tests.unit.test_apiclient import ONE_FACE, FakeApi
from tests.unit.test_uploader import _face_posts, _run_cli

LINK_LINE = (
    '{"image name": "outside.jpg", "error": {"error_code": "link_outside_source", '
    '"desc": "a link to a file outside the source folder; --follow-links enrolls it"}}'
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(ONE_FACE)
    (folder / os.fsdecode(b"caf\xe9.jpg")).write_bytes(ONE_FACE)  # Latin-1, not UTF-8
    secret = tmp_path / "private" / "someone.jpg"
    secret.parent.mkdir()
    secret.write_bytes(ONE_FACE)
    (folder / "outside.jpg").symlink_to(secret)
    return folder


def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8").splitlines()  # strict: the log is valid text


def _success_line(name: str, fake: FakeApi) -> str:
    [face_id] = [i for i, face in fake.faces.items() if face["user_data"] == name]
    return json.dumps({"image name": name, "face id": [face_id]}, ensure_ascii=False)


def _upload(monkeypatch: pytest.MonkeyPatch, fake: FakeApi, source: Path, *more: str) -> int:
    argv = ("--source", str(source), "--warped", "0", "--name-as-userdata", "1", *more)
    return _run_cli(monkeypatch, fake, *argv)


def test_every_file_ends_in_a_log_and_a_rerun_skips(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: Path
) -> None:
    fake = FakeApi()
    assert _upload(monkeypatch, fake, source) == 1
    assert "done 2, skipped 0, failed 1" in capsys.readouterr().out
    assert len(_face_posts(fake)) == 2 and len(fake.faces) == 2
    successes = _lines(source / SUCCESS_LOG)
    expected = [_success_line(name, fake) for name in ("caf\\xe9.jpg", "good.jpg")]
    assert sorted(successes) == sorted(expected)
    assert _lines(source / ERROR_LOG) == [LINK_LINE]

    fake.requests.clear()
    [list_id] = fake.lists
    assert _upload(monkeypatch, fake, source, "--list-id", list_id) == 1
    assert "done 0, skipped 2, failed 1" in capsys.readouterr().out
    assert _face_posts(fake) == [] and len(fake.faces) == 2
    assert sorted(_lines(source / SUCCESS_LOG)) == sorted(expected)
    assert _lines(source / ERROR_LOG) == [LINK_LINE]


def test_follow_links_enrolls_the_link(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: Path
) -> None:
    fake = FakeApi()
    assert _upload(monkeypatch, fake, source, "--follow-links") == 0
    assert "done 3, skipped 0, failed 0" in capsys.readouterr().out
    names = ("caf\\xe9.jpg", "good.jpg", "outside.jpg")
    assert sorted(_lines(source / SUCCESS_LOG)) == sorted(_success_line(n, fake) for n in names)
    assert _lines(source / ERROR_LOG) == []
