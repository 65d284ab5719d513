"""Runs one stage over a batch of raw messages, the same way under Faust (agents.py) and in
memory (testing.py).

It decodes each message through its source topic's contract, checks the ranges Avro cannot state
(ranges.py), runs the stage (a batch that breaks it is re-run one message at a time, so one
bad message fails alone), encodes the outputs through their topics' contracts and hands them to a
port. A message that fails becomes a dead letter, bounded so that it always fits on the broker,
and an error event when its event is known. `run` returns once the port has delivered everything
the batch sent: only then may the batch's offsets be committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Generic, Protocol, cast

from faust.types import EventT

from processors.errors import ProcessingError
from schemas import SchemaError
from schemas.records import Context, Reextraction
from streams.control.monitoring import Monitor
from streams.kafka import topics
from streams.kafka.images import ENVELOPE_BYTES
from streams.kafka.topics import RecordT
from streams.worker import ranges
from streams.worker.deadletters import MESSAGE_BOUND, letter
from streams.worker.stages import Result, Stage, error_event

log = logging.getLogger(__name__)

Sent = Awaitable[object]  # a message handed to the port, until the broker has it


class Position(Protocol):
    """Where a message sits: what its dead letter records."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class RawMessage(Protocol):
    """A message as it is on its topic (a Faust event is one)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def message(self) -> Position: ...


class Port(Protocol):
    """Where a runner's messages go: `send` hands one over and returns its delivery, which
    resolves once the broker has it (and raises if the broker refused it)."""

    async def send(self, topic: str, key: str | None, value: bytes | None) -> Sent: ...


async def dead_letter(
    port: Port,
    stage: str,
    raw: RawMessage,
    error: ProcessingError | SchemaError,
    context: Context | Reextraction | None,
) -> Sent:
    """Sends the message's dead letter (bounded: it always fits); returns its delivery."""
    code, message = error.code, str(error)
    if context is None:
        at = raw.message
        log.warning(
            "undecodable message at %s %s[%d]@%d: %s (%s)",
            stage,
            at.topic,
            at.partition,
            at.offset,
            message[:MESSAGE_BOUND],
            code,
        )
    # letter() reads only the key, the value and the message's topic, partition and offset.
    record = letter(stage, cast(EventT[bytes], raw), code, message, context)
    key = context["event_id"] if context else None
    return await port.send(topics.DEAD_LETTERS.suffix, key, topics.DEAD_LETTERS.encode(record))


class StageRunner(Generic[RecordT]):
    def __init__(
        self,
        stage: Stage[RecordT],
        source: topics.TopicSpec[RecordT],
        port: Port,
        monitor: Monitor,
        max_message_bytes: int,
    ) -> None:
        self.stage = stage
        self.source = source
        self.port = port
        self.monitor = monitor
        self.output_limit = max_message_bytes - ENVELOPE_BYTES

    async def run(self, batch: Sequence[RawMessage]) -> None:
        """Runs a batch through the stage; returns once every output, error event and dead
        letter of it is delivered. A send the broker refused raises: the batch stays unacked."""
        started = time.perf_counter()
        sent: list[Sent] = []
        decoded: list[tuple[RawMessage, RecordT]] = []
        for raw in batch:
            trusted = None  # a record whose context may be answered with an error event
            try:
                record = self.source.decode(raw.value)
                ranges.check_context(record["context"])
                trusted = record
                ranges.check(self.source.schema, record)
                decoded.append((raw, record))
            except SchemaError as error:
                rejected = ProcessingError(str(error), code=error.code)
                sent += await self._reject(raw, trusted, rejected)
        failed = len(batch) - len(decoded)
        records = [record for _, record in decoded]
        # Off the event loop: onnxruntime and numpy release the GIL, so fetching and sending go
        # on. The gallery the match stage searches and enrolls into locks against its follower.
        results = await asyncio.to_thread(self._run_isolated, records)
        for (raw, record), result in zip(decoded, results, strict=True):
            outcome = result.error or self._encode(result)
            if isinstance(outcome, ProcessingError):
                failed += 1
                sent += await self._reject(raw, record, outcome)
                continue
            for output, key, value in outcome:
                sent.append(await self.port.send(output, key, value))
        await asyncio.gather(*sent)
        elapsed = time.perf_counter() - started
        self.monitor.record(self.stage.name, len(batch) - failed, failed, elapsed)

    def _run_isolated(self, records: list[RecordT]) -> list[Result]:
        """Runs the batch; if it breaks, runs each message alone so one bad one fails alone."""
        stage = self.stage
        if not records:
            return []
        try:
            return stage.run(records)
        except Exception:
            log.exception(
                "stage %s failed on a batch of %d; retrying one by one", stage.name, len(records)
            )
        results = []
        for record in records:
            try:
                results.extend(stage.run([record]))
            except ProcessingError as rule:  # a rule of the stage, with its own code
                results.append(Result(error=rule))
            except Exception as exc:
                log.exception(
                    "stage %s failed on event %s", stage.name, record["context"]["event_id"]
                )
                error = ProcessingError(f"{stage.name} failed: {exc!r}", code="internal_error")
                results.append(Result(error=error))
        return results

    def _encode(self, result: Result) -> list[tuple[str, str | None, bytes]] | ProcessingError:
        """All of a message's outputs, or the contract one of them breaks (then none is sent)."""
        try:
            encoded: list[tuple[str, str | None, bytes]] = [
                (e.output, e.key, topics.BY_SUFFIX[e.output].encode(e.value)) for e in result.emits
            ]
        except SchemaError as bad_output:
            return ProcessingError(str(bad_output), code=bad_output.code)
        for output, _, value in encoded:
            if len(value) > self.output_limit:  # the broker would refuse it, and the batch with it
                return ProcessingError(
                    f"its {output} message is {len(value)} bytes, "
                    f"over the {self.output_limit}-byte limit",
                    code="output_too_large",
                )
        return encoded

    async def _reject(
        self, raw: RawMessage, record: RecordT | None, error: ProcessingError
    ) -> list[Sent]:
        """A dead letter, and an error event when the message's event is known."""
        stage = self.stage.name
        if record is None:
            return [await dead_letter(self.port, stage, raw, error, None)]
        context: Context = record["context"]
        log.warning(
            "event %s rejected at %s: %s (%s)",
            context["event_id"],
            stage,
            error.message,
            error.code,
        )
        value = topics.EVENTS.encode(error_event(context, error))
        return [
            await self.port.send(topics.EVENTS.suffix, context["event_id"], value),
            await dead_letter(self.port, stage, raw, error, context),
        ]
