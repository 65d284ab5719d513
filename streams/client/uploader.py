"""Enroll a folder of images through the API, as LUNA's folder_uploader.py does.

Every image of the folder (and its subfolders) with one of the reference's extensions becomes
faces through `POST /v1/faces`, `concurrency` images at a time, linked to one list. The logs lie
in the source folder itself, so a re-run of the same folder finds them wherever it starts from:

- `_success_log.txt` gains `{"image name": ..., "face id": [...]}` per enrolled image, over all
  runs; a re-run skips the images named there.
- `_error_log.txt` holds this run's failures, `{"image name": ..., "error": {"error_code": ...,
  "desc": ...}}`; a failed image (broken, faceless, refused) is retried by the next run. A face
  under `score_threshold` is `low_quality`, its desc giving the quality's parts (blur, dark,
  light, resolution, blockiness, pose, faceness).

The image name is the path relative to the source folder, bytes that are not UTF-8 written as
`\\xNN` so that the logs stay text. A link to a file outside the source folder is not followed
(an error log line says so) unless `follow_links` is set. Without a list id a new list is made;
pass the id it prints to a re-run so that the rest of the folder joins the same list.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.client.http import ApiError, AsyncClient

SUCCESS_LOG = "_success_log.txt"
ERROR_LOG = "_error_log.txt"


@dataclass(frozen=True)
class UploadOptions:
    """folder_uploader's options that change what the API does."""

    warped: bool
    list_id: str | None = None
    list_linked: bool = True
    list_userdata: str | None = None
    pitch_threshold: float | None = None
    roll_threshold: float | None = None
    yaw_threshold: float | None = None
    multi_face_allowed: bool = False
    get_major_detection: bool = False
    # folder_uploader's default: faces without a descriptor match nothing until a
    # re-extraction gives them one (their sample is kept for it).
    descriptor: bool = False
    # The reference's "descriptor quality score threshold": faces under this quality
    # (processors.quality) are not enrolled; the error log says low_quality and why.
    score_threshold: float = 0.0
    # folder_uploader's default: each face keeps its age, gender and expressions.
    basic_attr: bool = True
    avatar: bool = False  # the face's sample is also its avatar
    name_as_userdata: bool = False
    concurrency: int = 10
    follow_links: bool = False

    def __post_init__(self) -> None:
        if self.list_id is not None and not self.list_linked:
            raise ValueError("a list id with list_linked off: the faces would not join it")
        if self.list_id is not None and self.list_userdata is not None:
            raise ValueError("list user data is for a new list; the list id names an existing one")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")


@dataclass(frozen=True)
class UploadSummary:
    done: int
    skipped: int
    failed: int
    list_id: str | None

    def __str__(self) -> str:
        return (
            f"done {self.done}, skipped {self.skipped}, failed {self.failed}, "
            f"list id {self.list_id or '-'}"
        )


def _enrolled(log: Path) -> set[str]:
    """Image names of the success log; a line cut short by a crash does not count."""
    if not log.exists():
        return set()
    names = set()
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            names.add(json.loads(line)["image name"])
        except (ValueError, KeyError, TypeError):
            continue
    return names


def _log_name(path: Path, source: Path) -> str:
    # Paths reach Python with undecodable bytes as lone surrogates, which UTF-8 cannot encode.
    name = os.fsencode(path.relative_to(source).as_posix())
    return name.decode("utf-8", "backslashreplace")


def _link_refusal(name: str) -> dict[str, Any]:
    desc = "a link to a file outside the source folder; --follow-links enrolls it"
    return {"image name": name, "error": {"error_code": "link_outside_source", "desc": desc}}


def _write(log: TextIO, record: dict[str, Any]) -> None:
    # One line per image, flushed at once: a crash keeps what the server already made.
    log.write(json.dumps(record, ensure_ascii=False) + "\n")
    log.flush()


async def _target_list(client: AsyncClient, options: UploadOptions) -> str | None:
    if not options.list_linked:
        return None
    if options.list_id is not None:
        # Fails at once on a wrong id rather than once per image.
        return (await client.get_list(options.list_id)).list_id
    return await client.create_list(options.list_userdata)


async def _enroll(
    client: AsyncClient, name: str, path: Path, options: UploadOptions, list_ids: list[str]
) -> dict[str, Any]:
    """The log record of one image: its face ids, or the error that stopped it."""
    try:
        faces = await client.create_faces(
            path.read_bytes(),
            list_ids=list_ids,
            user_data=name if options.name_as_userdata else None,
            warped=options.warped,
            multi_face_allowed=options.multi_face_allowed,
            get_major_detection=options.get_major_detection,
            descriptor=options.descriptor,
            score_threshold=options.score_threshold,
            pitch_threshold=options.pitch_threshold,
            roll_threshold=options.roll_threshold,
            yaw_threshold=options.yaw_threshold,
            basic_attr=options.basic_attr,
            avatar=options.avatar,
        )
    except ApiError as exc:
        return {"image name": name, "error": {"error_code": exc.code, "desc": exc.desc}}
    except OSError as exc:
        return {"image name": name, "error": {"error_code": "read_failed", "desc": str(exc)}}
    return {"image name": name, "face id": [face.face_id for face in faces]}


async def upload_folder(client: AsyncClient, source: Path, options: UploadOptions) -> UploadSummary:
    """Enrolls the folder's images not in its success log; raises ApiError when the list is
    wrong or cannot be made, and logs every per-image failure instead of raising."""
    if not source.is_dir():
        raise NotADirectoryError(f"{source} is not a folder")
    done_before = _enrolled(source / SUCCESS_LOG)
    images = {_log_name(p, source): p for p in read_folder(source, IMAGE_EXTENSIONS)}
    todo = {name: path for name, path in images.items() if name not in done_before}
    root = source.resolve()
    links = set()
    if not options.follow_links:
        links = {name for name, path in todo.items() if not path.resolve().is_relative_to(root)}
    enrollable = {name: path for name, path in todo.items() if name not in links}
    list_id = await _target_list(client, options) if enrollable else options.list_id
    list_ids = [list_id] if list_id else []
    gate = asyncio.Semaphore(options.concurrency)

    # backslashreplace: an API's error text with a lone surrogate must not stop the logging.
    with (
        open(source / SUCCESS_LOG, "a", encoding="utf-8", errors="backslashreplace") as successes,
        open(source / ERROR_LOG, "w", encoding="utf-8", errors="backslashreplace") as errors,
        tqdm(total=len(todo), desc="upload", unit="img") as bar,
    ):
        for name in sorted(links):
            _write(errors, _link_refusal(name))
            bar.update()

        async def enroll(name: str, path: Path) -> bool:
            async with gate:
                record = await _enroll(client, name, path, options, list_ids)
            _write(errors if "error" in record else successes, record)
            bar.update()
            return "error" not in record

        results = await asyncio.gather(*(enroll(name, path) for name, path in enrollable.items()))

    failed = results.count(False)
    done = len(enrollable) - failed
    return UploadSummary(done, len(images) - len(todo), failed + len(links), list_id)


async def run_upload(origin: str, account_id: str, source: Path, options: UploadOptions) -> int:
    """`facestream upload`: prints the summary; 0 when every image is enrolled, else 1."""
    async with AsyncClient(origin, account_id=account_id) as client:
        try:
            summary = await upload_folder(client, source, options)
        except (ApiError, OSError) as exc:
            print(f"upload failed: {exc}")
            return 1
    print(summary)
    return 0 if summary.failed == 0 else 1
