"""A stage runner's batch, run as the Faust agents and the in-memory driver run it, with hostile
messages in it: each bad message ends as one dead letter that fits on the broker (and an error
event when its event is known), the rest goes on, and a batch whose outputs the broker did not
take never returns as done."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

import schemas
from processors.errors import ProcessingError
from streams.control.monitoring import Monitor
from streams.kafka import topics
from streams.settings import LiveSettings, MiB, Settings
from streams.worker import deadletters
from streams.worker.runner import Sent, StageRunner
from streams.worker.stages import Emit, Result
from streams.worker.testing import InMemoryPort, Message, Position

LIMIT = MiB  # the broker's message limit in these tests
Record = schemas.Record
DETECTIONS = schemas.codec("Detections")


class Broker(InMemoryPort):
    """The in-memory port (it refuses a message over LIMIT as the producer does), which can also
    fail every delivery as a broker that is gone."""

    def __init__(self) -> None:
        super().__init__(LIMIT)
        self.down = False

    async def send(self, topic: str, key: str | None, value: bytes | None) -> Sent:
        if not self.down:
            return await super().send(topic, key, value)
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionError("the broker is gone"))
        return failed

    def values(self, topic: str) -> list[bytes | None]:
        return [m.value for m in self.raw[topic]]

    def letters(self) -> list[Record]:
        return [letter for _, letter in self.sink["dead_letters"]]

    def events(self) -> list[Record]:
        return [event for _, event in self.sink["events"]]


class FakeStage:
    """Passes each record on to `detections`; `fails` says which records break it, with
    `error`."""

    name = "liveness"

    def __init__(
        self,
        fails: Callable[[Record], bool] = lambda record: False,
        error: Exception | None = None,
    ) -> None:
        self.fails = fails
        self.error = error or RuntimeError("the model blew up")
        self.seen: list[str] = []

    def run(self, records: Sequence[Record]) -> list[Result]:
        if any(self.fails(r) for r in records):
            raise self.error
        self.seen += [r["context"]["event_id"] for r in records]
        return [Result([Emit("detections", r["context"]["event_id"], r)]) for r in records]


def detections(**face: Any) -> Record:
    geometry = {"index": 0, "x": 1.0, "y": 2.0, "width": 50.0, "height": 60.0, "score": 0.9}
    return {
        "context": {
            "event_id": str(uuid.uuid4()),
            "account_id": str(uuid.uuid4()),
            "created_at": datetime.now(UTC).replace(microsecond=0),
            "source": None,
            "list_ids": [],
            "enroll": None,
            "timings": {},
        },
        "image_width": 640,
        "image_height": 480,
        "faces": [
            {
                "geometry": geometry | {"landmarks": [1.0] * 10} | face.pop("geometry", {}),
                "sample_id": "s",
                "sample": b"jpeg",
                "liveness_input": bytes(2 * 80 * 80 * 3),
            }
            | face
        ],
    }


def event(value: bytes | None, offset: int) -> Any:
    """A Faust event as deadletters reads it, with the flag finish_batch sets."""
    meta = SimpleNamespace(topic="t.detections", partition=1, offset=offset, acked=False)
    return SimpleNamespace(key=b"k", value=value, message=meta)


def message(value: bytes | None, offset: int, key: bytes | None = b"k") -> Message:
    return Message(key, value, Position("t.detections", 1, offset))


def run(
    broker: Broker,
    messages: Sequence[Message],
    stage: FakeStage | None = None,
    source: topics.TopicSpec = topics.DETECTIONS,
) -> None:
    monitor = Monitor(LiveSettings(Settings()))
    runner = StageRunner(stage or FakeStage(), source, broker, monitor, LIMIT)
    asyncio.run(runner.run(messages))


def run_values(
    broker: Broker, values: Sequence[bytes | None], stage: FakeStage | None = None
) -> None:
    run(broker, [message(value, offset) for offset, value in enumerate(values)], stage)


def good() -> tuple[str, bytes]:
    record = detections()
    return record["context"]["event_id"], DETECTIONS.encode(record)


def test_a_null_value_is_a_dead_letter_and_the_batch_goes_on() -> None:
    broker, (first, before), (last, after) = Broker(), good(), good()
    run_values(broker, [before, None, after])
    assert [
        schemas.codec("Detections").decode(v)["context"]["event_id"]
        for v in broker.values("detections")
    ] == [first, last]
    (letter,) = broker.letters()
    assert (letter["error_code"], letter["offset"], letter["payload"]) == ("null_value", 1, None)
    assert (letter["payload_size"], letter["payload_sha256"], letter["key"]) == (None, None, b"k")
    assert broker.events() == []  # no event is known


def test_codec_refuses_a_null_value_with_its_code() -> None:
    with pytest.raises(schemas.SchemaError) as refused:
        DETECTIONS.decode(None)
    assert refused.value.code == "null_value"


def test_garbage_and_a_non_utf8_key_are_dead_letters_with_the_key_kept() -> None:
    broker, (_, value) = Broker(), good()
    run(broker, [message(b"\x00garbage", 0, key=b"\xff\xfe"), message(value, 1, key=b"\xff")])
    (letter,) = broker.letters()
    assert (letter["error_code"], letter["key"]) == ("bad_wire_format", b"\xff\xfe")
    assert len(broker.values("detections")) == 1


def test_an_oversized_message_becomes_a_dead_letter_that_fits() -> None:
    broker, (_, value) = Broker(), good()
    huge = os.urandom(LIMIT - 1024)  # as big as the broker takes
    run_values(broker, [huge, value])
    (letter,) = broker.letters()
    assert letter["error_code"] == "bad_wire_format"
    assert letter["payload"] == huge[: deadletters.PAYLOAD_BOUND]
    assert letter["payload_size"] == len(huge)
    assert letter["payload_sha256"] == hashlib.sha256(huge).hexdigest()
    assert max(len(v or b"") for v in broker.values("dead_letters")) < 2 * deadletters.PAYLOAD_BOUND
    assert len(broker.values("detections")) == 1


def test_a_dead_letter_of_version_1_still_decodes() -> None:
    v1 = parse_schema(json.loads(schemas.history_versions("DeadLetter")[1].read_text()))
    out = io.BytesIO()
    out.write(bytes((schemas.MAGIC, 1)))
    letter = deadletters.letter("detect", event(b"abc", 7), "x", "y", None)
    schemaless_writer(
        out,
        v1,
        {
            k: letter[k]
            for k in (
                "stage",
                "topic",
                "partition",
                "offset",
                "event_id",
                "account_id",
                "error_code",
                "error_message",
                "failed_at",
                "payload",
            )
        },
    )
    decoded = schemas.codec("DeadLetter").decode(out.getvalue())
    assert (decoded["payload"], decoded["offset"], decoded["payload_size"]) == (b"abc", 7, None)


@pytest.mark.parametrize(
    ("face", "where"),
    [
        ({"liveness_input": bytes(100)}, "liveness_input"),
        ({"geometry": {"index": 70000}}, "geometry.index"),
        ({"geometry": {"index": -1}}, "geometry.index"),
        ({"geometry": {"width": -5.0}}, "geometry.width"),
        ({"geometry": {"height": math.nan}}, "geometry.height"),
        ({"geometry": {"score": math.inf}}, "geometry.score"),
        ({"geometry": {"landmarks": [1.0] * 4}}, "geometry.landmarks"),
    ],
)
def test_a_value_out_of_range_is_an_error_event_and_a_dead_letter(
    face: dict[str, Any], where: str
) -> None:
    broker, (first, value) = Broker(), good()
    bad = detections(**face)
    stage = FakeStage()
    run_values(broker, [DETECTIONS.encode(bad), value], stage)
    assert stage.seen == [first]  # the stage never sees the bad one
    (letter,) = broker.letters()
    (event,) = broker.events()
    assert letter["error_code"] == event["error_code"] == "out_of_range"
    assert letter["event_id"] == event["context"]["event_id"] == bad["context"]["event_id"]
    assert where in letter["error_message"]
    assert event["status"] == "error"


def test_a_context_out_of_range_is_a_dead_letter_only() -> None:
    broker, bad = Broker(), detections()
    bad["context"]["created_at"] = datetime(1900, 1, 1, tzinfo=UTC)
    run_values(broker, [DETECTIONS.encode(bad)])
    (letter,) = broker.letters()
    assert (letter["error_code"], letter["event_id"]) == ("out_of_range", None)
    assert broker.events() == []


def test_a_descriptor_of_the_wrong_length_is_out_of_range() -> None:
    codec = schemas.codec("Descriptors")
    record = detections()
    face = record["faces"][0]
    record["descriptor_version"] = 1
    record["faces"] = [
        {
            "geometry": face["geometry"],
            "sample_id": "s",
            "liveness": {"probability": 0.5, "quality": 0.5},
            "descriptor": bytes(5),
            "other_descriptors": [],
        }
    ]
    broker = Broker()
    run(broker, [message(codec.encode(record), 0)], source=topics.DESCRIPTORS)
    (letter,) = broker.letters()
    assert letter["error_code"] == "out_of_range" and "descriptor bytes" in letter["error_message"]
    assert len(broker.events()) == 1


def test_a_stage_exception_is_contained_to_its_message() -> None:
    broker, (_, a), (_, b) = Broker(), good(), good()
    bad = detections()
    bad_id = bad["context"]["event_id"]
    run_values(
        broker,
        [a, DETECTIONS.encode(bad), b],
        FakeStage(lambda r: r["context"]["event_id"] == bad_id),
    )
    (letter,) = broker.letters()
    (event,) = broker.events()
    assert letter["error_code"] == event["error_code"] == "internal_error"
    assert event["context"]["event_id"] == bad_id
    assert len(broker.values("detections")) == 2


def test_a_rule_a_message_breaks_in_its_batch_keeps_its_code_when_run_alone() -> None:
    broker, (first, a), (last, b) = Broker(), good(), good()
    bad = detections()
    bad_id = bad["context"]["event_id"]
    stage = FakeStage(
        lambda r: r["context"]["event_id"] == bad_id, ProcessingError("too dark", code="too_dark")
    )
    run_values(broker, [a, DETECTIONS.encode(bad), b], stage)
    assert stage.seen == [first, last]  # the others, each run alone after the batch broke
    (letter,) = broker.letters()
    (event,) = broker.events()
    assert (letter["error_code"], event["error_code"]) == ("too_dark", "too_dark")
    assert letter["event_id"] == bad_id and event["error_message"] == "too dark"


def test_an_output_over_the_limit_is_an_error_not_a_refused_send() -> None:
    broker, bad, (_, value) = Broker(), detections(sample=os.urandom(LIMIT)), good()
    run_values(broker, [DETECTIONS.encode(bad), value])
    (event,) = broker.events()
    assert event["error_code"] == "output_too_large"
    assert len(broker.values("detections")) == 1
    assert len(broker.letters()) == 1


def test_a_send_the_broker_does_not_acknowledge_fails_the_batch() -> None:
    broker, (_, value) = Broker(), good()
    broker.down = True
    with pytest.raises(ConnectionError):
        run_values(broker, [value])


class Exited(Exception):
    pass


def test_a_failed_batch_exits_the_process_before_it_is_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codes: list[int] = []

    def exit(code: int) -> None:
        codes.append(code)
        raise Exited

    async def broken() -> None:
        raise ProcessingError("not contained")

    monkeypatch.setattr("os._exit", exit)
    with pytest.raises(Exited):
        asyncio.run(deadletters.finish_batch("stage x", [event(b"", 0)], broken()))
    assert codes == [deadletters.CRASH_EXIT_CODE]


def test_a_batch_cancelled_midway_holds_back_its_offsets() -> None:
    events = [event(b"", 0), event(b"", 1)]

    async def stop_midway() -> None:
        work = asyncio.create_task(asyncio.sleep(10))
        batch = asyncio.create_task(deadletters.finish_batch("stage x", events, work))
        await asyncio.sleep(0)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch

    asyncio.run(stop_midway())
    assert all(e.message.acked for e in events)  # so take_events' ack commits nothing
