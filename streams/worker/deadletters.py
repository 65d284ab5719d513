"""What an agent does with a message or a batch it cannot finish.

A message it cannot decode or process becomes a dead letter, bounded so that the letter itself
always fits on the broker. Anything else that goes wrong in a batch ends the process at once,
before Faust's `take_events` acknowledges the batch: the offsets stay uncommitted, the batch is
redelivered to the restarted process, and no process is left alive but idle.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import NoReturn

from faust.types import EventT

from schemas.records import Context, DeadLetter, Reextraction

log = logging.getLogger(__name__)

PAYLOAD_BOUND = 64 * 1024  # bytes of the original value (and key) a letter keeps
MESSAGE_BOUND = 4 * 1024  # characters of the error message a letter keeps
CRASH_EXIT_CODE = 70  # EX_SOFTWARE; the supervisor restarts the process after a backoff


def _bounded(data: bytes | None) -> bytes | None:
    return None if data is None else bytes(data[:PAYLOAD_BOUND])


def letter(
    stage: str,
    event: EventT[bytes],
    code: str,
    message: str,
    context: Context | Reextraction | None,
) -> DeadLetter:
    """The DeadLetter record of `event`: its payload cut to PAYLOAD_BOUND, with the original
    size and sha256 so that the cut is visible and the original can be found again."""
    msg, value = event.message, event.value
    return {
        "stage": stage,
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "event_id": context["event_id"] if context else None,
        "account_id": context["account_id"] if context else None,
        "error_code": code,
        "error_message": message[:MESSAGE_BOUND],
        "failed_at": datetime.now(UTC),
        "payload": _bounded(value),
        "payload_size": None if value is None else len(value),
        "payload_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
        "key": _bounded(event.key),
    }


def exit_now(
    reason: str, code: int = CRASH_EXIT_CODE, exc_info: BaseException | bool = True
) -> NoReturn:
    """Ends the process without returning to the event loop, so nothing more is acknowledged
    or committed. Call it from an `except` block or pass the exception: its traceback is
    logged."""
    log.critical("%s: exiting (%d) without committing the batch", reason, code, exc_info=exc_info)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def finish_batch(what: str, events: Sequence[EventT[bytes]], work: Awaitable[None]) -> None:
    """Awaits a batch's `work` inside the agent's `async for` body, before take_events acks it.

    An exception exits the process (see exit_now). A cancellation (the worker stopping) withholds
    the batch's acks: take_events acks the batch on its way out, and the commit at stop would
    otherwise cover messages whose outputs were never sent."""
    try:
        await work
    except asyncio.CancelledError:
        for event in events:
            event.message.acked = True  # faust then skips the consumer's ack of it
        raise
    except Exception:
        exit_now(f"{what} failed outside any one message")
