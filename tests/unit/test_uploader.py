"""`facestream upload` on a temp folder against the fake API: logs, re-runs, lists, concurrency."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from streams.client import uploader
from streams.client.http import ApiError, AsyncClient
from streams.client.uploader import ERROR_LOG, SUCCESS_LOG, UploadOptions, upload_folder
from tests.unit.test_apiclient import ACCOUNT, BROKEN, NO_FACE, ONE_FACE, FakeApi

GOOD = ["a.jpg", "b.PNG", "people/c.jpeg"]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Three good images (one in a subfolder, one with an upper-case suffix), a faceless one,
    a broken one, and files that are not images by their name."""
    folder = tmp_path / "images"
    (folder / "people").mkdir(parents=True)
    for name in GOOD:
        (folder / name).write_bytes(ONE_FACE)
    (folder / "empty-room.tif").write_bytes(NO_FACE)
    (folder / "broken.bmp").write_bytes(BROKEN)
    (folder / "notes.txt").write_bytes(ONE_FACE)
    (folder / "a.svg").write_bytes(ONE_FACE)
    return folder


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi(delay=0.01)


@pytest.fixture
async def client(fake: FakeApi) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(account_id=ACCOUNT, transport=fake.async_transport()) as api:
        yield api


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _face_posts(fake: FakeApi) -> list[Any]:
    return [r for r in fake.requests if (r.method, r.url.path) == ("POST", "/v1/faces")]


async def test_logs_both_outcomes_and_makes_a_list(
    client: AsyncClient, fake: FakeApi, source: Path
) -> None:
    options = UploadOptions(warped=False, list_userdata="staff")
    summary = await upload_folder(client, source, options)

    assert (summary.done, summary.skipped, summary.failed) == (3, 0, 2)
    assert summary.list_id is not None and fake.lists[summary.list_id]["user_data"] == "staff"
    successes = _log(source / SUCCESS_LOG)
    assert sorted(r["image name"] for r in successes) == sorted(GOOD)
    for record in successes:
        assert set(record) == {"image name", "face id"}
        [face_id] = record["face id"]
        assert fake.faces[face_id]["list_ids"] == [summary.list_id]
        assert fake.faces[face_id]["user_data"] is None
    errors = {r["image name"]: r["error"] for r in _log(source / ERROR_LOG)}
    assert {name: e["error_code"] for name, e in errors.items()} == {
        "empty-room.tif": "no_face",
        "broken.bmp": "undecodable_image",
    }
    assert all(e["desc"] for e in errors.values())
    assert len(_face_posts(fake)) == 5
    assert str(summary) == f"done 3, skipped 0, failed 2, list id {summary.list_id}"


async def test_a_rerun_skips_what_succeeded(
    client: AsyncClient, fake: FakeApi, source: Path
) -> None:
    first = await upload_folder(client, source, UploadOptions(warped=False))
    (source / "late.jpg").write_bytes(ONE_FACE)
    fake.requests.clear()

    again = UploadOptions(warped=False, list_id=first.list_id)
    second = await upload_folder(client, source, again)

    assert (second.done, second.skipped, second.failed) == (1, 3, 2)
    assert second.list_id == first.list_id and len(fake.lists) == 1
    sent = sorted(r.content for r in _face_posts(fake))
    assert sent == sorted([ONE_FACE, NO_FACE, BROKEN])
    assert len(_log(source / SUCCESS_LOG)) == 4
    # The error log holds this run's failures only.
    assert sorted(r["image name"] for r in _log(source / ERROR_LOG)) == [
        "broken.bmp",
        "empty-room.tif",
    ]


async def test_nothing_left_to_do_makes_no_list(
    client: AsyncClient, fake: FakeApi, source: Path
) -> None:
    for name in ("empty-room.tif", "broken.bmp"):
        (source / name).unlink()
    await upload_folder(client, source, UploadOptions(warped=False))
    fake.requests.clear()
    summary = await upload_folder(client, source, UploadOptions(warped=False))
    assert (summary.done, summary.skipped, summary.failed, summary.list_id) == (0, 3, 0, None)
    assert fake.requests == []


async def test_options_reach_the_api(client: AsyncClient, fake: FakeApi, source: Path) -> None:
    options = UploadOptions(
        warped=True,
        list_linked=False,
        pitch_threshold=10,
        roll_threshold=20,
        yaw_threshold=30,
        multi_face_allowed=True,
        get_major_detection=True,
        score_threshold=0.4,
        name_as_userdata=True,
    )
    summary = await upload_folder(client, source, options)

    assert summary.list_id is None and fake.lists == {}
    posts = _face_posts(fake)
    assert {r.url.params["user_data"] for r in posts} == {*GOOD, "empty-room.tif", "broken.bmp"}
    for request in posts:
        params = dict(request.url.params)
        assert "list_id" not in params
        assert (
            params.items()
            >= {
                "warped": "1",
                "multi_face_allowed": "1",
                "get_major_detection": "1",
                "score_threshold": "0.4",
                "pitch_threshold": "10",
                "roll_threshold": "20",
                "yaw_threshold": "30",
                "basic_attr": "1",  # folder_uploader's default
            }.items()
        )
    assert {f["user_data"] for f in fake.faces.values()} == set(GOOD)


async def test_at_most_concurrency_requests_at_once(
    client: AsyncClient, fake: FakeApi, tmp_path: Path
) -> None:
    for i in range(20):
        (tmp_path / f"{i:02d}.jpg").write_bytes(ONE_FACE)
    summary = await upload_folder(client, tmp_path, UploadOptions(warped=False, concurrency=3))
    assert summary.done == 20
    assert fake.peak == 3


async def test_a_wrong_list_id_stops_before_any_image(
    client: AsyncClient, fake: FakeApi, source: Path
) -> None:
    with pytest.raises(ApiError) as caught:
        await upload_folder(client, source, UploadOptions(warped=False, list_id="missing"))
    assert caught.value.code == "list_not_found"
    assert _face_posts(fake) == []


def test_contradictory_options_are_refused() -> None:
    with pytest.raises(ValueError, match="list_linked"):
        UploadOptions(warped=False, list_id="l1", list_linked=False)
    with pytest.raises(ValueError, match="new list"):
        UploadOptions(warped=False, list_id="l1", list_userdata="staff")
    with pytest.raises(ValueError, match="concurrency"):
        UploadOptions(warped=False, concurrency=0)


def _run_cli(monkeypatch: pytest.MonkeyPatch, fake: FakeApi, *argv: str) -> int:
    # The command makes its own client; hand it the fake's transport.
    client = functools.partial(AsyncClient, transport=fake.async_transport())
    monkeypatch.setattr(uploader, "AsyncClient", client)
    return main(["upload", "--account-id", ACCOUNT, *argv])


def test_the_command_exits_1_on_failures_then_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: Path
) -> None:
    fake = FakeApi()
    assert _run_cli(monkeypatch, fake, "--source", str(source), "--warped", "0") == 1
    [list_id] = fake.lists
    assert f"done 3, skipped 0, failed 2, list id {list_id}" in capsys.readouterr().out

    for name in ("empty-room.tif", "broken.bmp"):
        (source / name).unlink()
    argv = ("--source", str(source), "--warped", "0", "--list-id", list_id)
    assert _run_cli(monkeypatch, fake, *argv) == 0
    assert "done 0, skipped 3, failed 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--warped", "2"],
        ["--warped", "0", "--score-threshold", "1.5"],
        ["--warped", "0", "--yaw-threshold", "181"],
        ["--warped", "0", "--api", "4"],
        [],
    ],
)
def test_the_command_checks_its_options(
    monkeypatch: pytest.MonkeyPatch, source: Path, argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        _run_cli(monkeypatch, FakeApi(), "--source", str(source), *argv)
    assert caught.value.code == 2


def test_the_command_refuses_a_list_id_it_would_not_link(
    monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    argv = ("--source", str(source), "--warped", "0", "--list-id", "l1", "--list-linked", "0")
    assert _run_cli(monkeypatch, FakeApi(), *argv) == 2


def test_the_seeds_option_names_and_api_versions(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    source: Path,
) -> None:
    """folder_uploader's own spelling (underscores), --api 5 or 6, --descriptor as it says,
    --basic_attr 1 unless it says 0."""
    fake = FakeApi()
    client = functools.partial(AsyncClient, transport=fake.async_transport())
    monkeypatch.setattr(uploader, "AsyncClient", client)
    for api, descriptor, basic_attr in (("6", "1", []), ("5", "0", ["--basic_attr", "0"])):
        fake.requests.clear()
        (source / "_success_log.txt").unlink(missing_ok=True)  # all five tried again
        argv = ["--account_id", ACCOUNT, "--source", str(source), "--warped", "0", *basic_attr]
        argv += ["--descriptor", descriptor, "--api", api, "--name_as_userdata", "1"]
        main(["upload", *argv])
        posts = _face_posts(fake)
        assert len(posts) == 5 and {r.headers["Luna-Account-Id"] for r in posts} == {ACCOUNT}
        sent = {r.url.params.get("descriptor") for r in posts}
        assert sent == ({None} if descriptor == "1" else {"0"})
        sent = {r.url.params.get("basic_attr") for r in posts}
        assert sent == ({"1"} if not basic_attr else {None})
    assert "match nothing until a re-extraction" in caplog.text
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(
            [
                "upload",
                "--account_id",
                ACCOUNT,
                "--source",
                str(source),
                "--warped",
                "0",
                "--api",
                "7",
            ]
        )
    assert "5 and 6 are both facestream's one HTTP API" in capsys.readouterr().err
