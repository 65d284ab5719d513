"""Sending and enrolling images: `send`, `enroll`, `upload` and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from streams.cli.common import number_in
from streams.settings import get_settings

log = logging.getLogger("facestream")

DEFAULT_ACCOUNT = "6d071cca-fda5-4a03-84d5-5bea65904480"


def _send(args: argparse.Namespace) -> int:
    from streams.client.demo import send_folder

    return asyncio.run(
        send_folder(
            get_settings(),
            args.paths,
            account_id=args.account_id,
            list_ids=args.list_id or [],
            wait=args.wait,
            timeout=args.timeout,
        )
    )


def _enroll(args: argparse.Namespace) -> int:
    from streams.client.demo import enroll_folder

    return asyncio.run(
        enroll_folder(
            get_settings(),
            args.folder,
            account_id=args.account_id,
            list_id=args.list_id,
            timeout=args.timeout,
        )
    )


def _upload(args: argparse.Namespace) -> int:
    from streams.client.uploader import UploadOptions, run_upload

    if not args.descriptor:
        log.warning(
            "--descriptor 0 (folder_uploader's default): the faces keep their samples but get no "
            "descriptor, so they match nothing until a re-extraction gives them one (`facestream "
            "reextract`, POST /v1/tasks/reextract); pass --descriptor 1 to match them at once"
        )
    try:
        options = UploadOptions(
            warped=bool(args.warped),
            list_id=args.list_id,
            list_linked=bool(args.list_linked),
            list_userdata=args.list_userdata,
            pitch_threshold=args.pitch_threshold,
            roll_threshold=args.roll_threshold,
            yaw_threshold=args.yaw_threshold,
            multi_face_allowed=bool(args.multi_face_allowed),
            get_major_detection=bool(args.get_major_detection),
            descriptor=bool(args.descriptor),
            score_threshold=args.score_threshold,
            basic_attr=bool(args.basic_attr),
            avatar=bool(args.avatar),
            name_as_userdata=bool(args.name_as_userdata),
            concurrency=args.concurrency,
            follow_links=args.follow_links,
        )
    except ValueError as exc:
        print(f"facestream upload: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_upload(args.origin, args.account_id, args.source, options))


def _demo(args: argparse.Namespace) -> int:
    from streams.client.demo import run_demo

    return asyncio.run(run_demo(get_settings(), args.testdata, timeout=args.timeout))


def _names(name: str) -> tuple[str, ...]:
    """An option's hyphenated name and folder_uploader's own, with underscores."""
    seed = name.replace("-", "_").replace("__", "--", 1)
    return (name, seed) if seed != name else (name,)


def _api_version(value: str) -> int:
    """folder_uploader's --api: LUNA's API versions 5 and 6 both mean our one API (v1)."""
    if value not in ("5", "6"):
        raise argparse.ArgumentTypeError(
            f"{value!r}: folder_uploader's API versions 5 and 6 are both facestream's one HTTP "
            "API (/v1); no other version exists"
        )
    return int(value)


def _flag(parser: argparse.ArgumentParser, name: str, default: int | None, help: str) -> None:
    """A 0|1 option, as folder_uploader takes them; required when it has no default."""
    parser.add_argument(
        *_names(name),
        type=int,
        choices=(0, 1),
        metavar="0|1",
        default=default,
        required=default is None,
        help=help,
    )


def _add_upload(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`upload`, with LUNA folder_uploader's options."""
    upload = sub.add_parser(
        "upload",
        help="enroll a folder of images through the API (LUNA's folder_uploader); logs "
        "_success_log.txt and _error_log.txt in the folder, a re-run skips what succeeded",
    )
    upload.add_argument(*_names("--account-id"), required=True)
    upload.add_argument("--source", type=Path, required=True, help="folder of images")
    _flag(upload, "--warped", None, "the images are 250x250 aligned samples")
    _flag(
        upload,
        "--descriptor",
        0,
        "extract a descriptor; with 0 (folder_uploader's default) a face matches nothing "
        "until a re-extraction gives it one",
    )
    upload.add_argument("--origin", default="http://127.0.0.1:5000", help="the API's address")
    upload.add_argument(
        "--api",
        type=_api_version,
        default=5,
        metavar="5|6",
        help="folder_uploader's API version: 5 and 6 both mean facestream's one API",
    )
    _flag(
        upload,
        "--avatar",
        0,
        "the face's sample is also its avatar (GET /v1/faces/{id}/avatar)",
    )
    upload.add_argument(
        *_names("--list-id"), help="existing list to link the faces to (default: a new one)"
    )
    _flag(upload, "--list-linked", 1, "link the faces to a list")
    upload.add_argument(*_names("--list-userdata"), help="user data of the new list")
    for angle in ("pitch", "roll", "yaw"):
        upload.add_argument(
            *_names(f"--{angle}-threshold"),
            type=number_in(0, 180, float),
            help=f"largest {angle} angle kept, degrees [0..180]",
        )
    _flag(upload, "--multi-face-allowed", 0, "a face per face found, not just one")
    _flag(upload, "--get-major-detection", 0, "with several faces, keep the largest")
    _flag(upload, "--basic-attr", 1, "each face keeps its age, gender and expressions")
    upload.add_argument(
        *_names("--score-threshold"),
        type=number_in(0, 1, float),
        default=0.0,
        help="descriptor quality score threshold: the lowest face quality kept [0..1] "
        "(processors.quality: blur, exposure, resolution, JPEG blocks, pose, face-ness); a face "
        "below it is not enrolled (low_quality in _error_log.txt)",
    )
    _flag(upload, "--name-as-userdata", 0, "the image's name is the face's user data")
    upload.add_argument("--concurrency", type=int, default=10, help="images in flight at once")
    upload.add_argument(
        *_names("--follow-links"),
        action="store_true",
        help="enroll links to files outside the folder too (by default skipped, in the error log)",
    )
    upload.set_defaults(run=_upload)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`send`, `enroll`, `upload` and `demo`, in this order."""
    send = sub.add_parser("send", help="send image files or folders through the pipeline")
    send.add_argument("paths", nargs="+", type=Path)
    send.add_argument("--account-id", default=DEFAULT_ACCOUNT)
    send.add_argument("--list-id", action="append", help="list to match against (repeatable)")
    send.add_argument("--wait", action="store_true", help="wait for and print each event")
    send.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (--wait)")
    send.set_defaults(run=_send)

    enroll = sub.add_parser(
        "enroll",
        help="enroll known people: FOLDER/<person>/<image> makes one face per person, "
        "user data = the person's folder name",
    )
    enroll.add_argument("folder", type=Path)
    enroll.add_argument("--list-id", required=True)
    enroll.add_argument("--account-id", default=DEFAULT_ACCOUNT)
    enroll.add_argument("--timeout", type=float, default=300.0)
    enroll.set_defaults(run=_enroll)

    _add_upload(sub)

    demo = sub.add_parser(
        "demo", help="enroll dlib's example people, send real photos, print what came out"
    )
    demo.add_argument("--testdata", type=Path, default=Path(".facestream/testdata"))
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.set_defaults(run=_demo)
