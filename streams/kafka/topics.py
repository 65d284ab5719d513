"""Topics: each declared once with its contract (the schema its messages follow, which encodes
and decodes them), its name and its Kafka settings. One topic per stage so that stages scale
independently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

import schemas
from schemas.records import (
    ConfigChange,
    DeadLetter,
    Descriptors,
    Detections,
    Event,
    Face,
    Image,
    List,
    LivenessResults,
    Reextraction,
    Sample,
    TaskState,
)
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)
RecordT = TypeVar("RecordT", bound=Mapping[str, Any])  # the records.py type of a topic


@dataclass(frozen=True)
class TopicSpec(Generic[RecordT]):
    suffix: str  # the topic is "<prefix>.<suffix>"
    schema: str  # message type in schemas/
    compacted: bool = False

    def encode(self, record: RecordT) -> bytes:
        """The message's value in the wire format; SchemaError if it breaks the contract."""
        return schemas.codec(self.schema).encode(record)

    def decode(self, value: bytes | None) -> RecordT:
        """The record a message's value holds (of any version there is a snapshot of);
        SchemaError with its code (null_value, bad_wire_format, ...) if it holds none."""
        return cast(RecordT, schemas.codec(self.schema).decode(value))  # a typed view, no copy


IMAGES: TopicSpec[Image] = TopicSpec("images", "Image")
DETECTIONS: TopicSpec[Detections] = TopicSpec("detections", "Detections")
LIVENESS: TopicSpec[LivenessResults] = TopicSpec("liveness", "LivenessResults")
DESCRIPTORS: TopicSpec[Descriptors] = TopicSpec("descriptors", "Descriptors")
EVENTS: TopicSpec[Event] = TopicSpec("events", "Event")
FACES: TopicSpec[Face] = TopicSpec("faces", "Face", compacted=True)
SAMPLES: TopicSpec[Sample] = TopicSpec("samples", "Sample", compacted=True)
LISTS: TopicSpec[List] = TopicSpec("lists", "List", compacted=True)
CONFIG: TopicSpec[ConfigChange] = TopicSpec("config", "ConfigChange", compacted=True)
CONFIG_HISTORY: TopicSpec[ConfigChange] = TopicSpec("config_history", "ConfigChange")
REEXTRACTIONS: TopicSpec[Reextraction] = TopicSpec("reextractions", "Reextraction")
TASKS: TopicSpec[TaskState] = TopicSpec("tasks", "TaskState", compacted=True)
DEAD_LETTERS: TopicSpec[DeadLetter] = TopicSpec("dead_letters", "DeadLetter")

ALL: tuple[TopicSpec[Any], ...] = (
    IMAGES,
    DETECTIONS,
    LIVENESS,
    DESCRIPTORS,
    EVENTS,
    FACES,
    SAMPLES,
    LISTS,
    DEAD_LETTERS,
    CONFIG,
    CONFIG_HISTORY,
    REEXTRACTIONS,
    TASKS,
)
BY_SUFFIX: dict[str, TopicSpec[Any]] = {spec.suffix: spec for spec in ALL}


def topic_name(settings: KafkaSettings, spec: TopicSpec[Any]) -> str:
    return f"{settings.topic_prefix}.{spec.suffix}"


def bootstrap_servers(settings: KafkaSettings) -> str:
    """Faust's kafka://host:port[;host:port] URL as aiokafka's bootstrap list."""
    hosts = settings.broker.replace("kafka://", "").replace(";", ",")
    return ",".join(h.strip().removeprefix("kafka://") for h in hosts.split(","))


def producer(settings: KafkaSettings, **options: Any) -> AIOKafkaProducer:
    """A producer whose sends are acknowledged by every replica and may be as large as a topic
    takes; a process makes one and shares it."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(settings),
        max_request_size=settings.max_message_bytes,
        acks="all",
        **options,
    )


def topic_config(settings: KafkaSettings, spec: TopicSpec[Any]) -> dict[str, str]:
    config = {"max.message.bytes": str(settings.max_message_bytes)}
    if spec.compacted:
        config |= {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
    return config


async def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Creates the missing topics with their partitions and compaction; returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                topic_name(settings, spec),
                num_partitions=settings.partitions,
                replication_factor=1,
                topic_configs=topic_config(settings, spec),
            )
            for spec in ALL
            if topic_name(settings, spec) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(wanted)
            log.info("created topics: %s", ", ".join(t.name for t in wanted))
        # Existing ones too: another process may have created them a moment ago.
        await _wait_for_leaders(admin, [topic_name(settings, spec) for spec in ALL])
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def delete_deployment_topics(settings: KafkaSettings) -> list[str]:
    """Deletes every topic of the prefix, the pipeline's and Faust's own (`<prefix>-...`): a
    deployment, a test run or a benchmark taken down. Returns those deleted."""
    prefix = settings.topic_prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings))
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))]
        if mine:
            await admin.delete_topics(mine)
        return mine
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30
) -> None:
    """New partitions answer NotLeader until elected; a consumer that asks too early keeps
    retrying on stale metadata, so creation finishes only when every partition has a leader."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        if all(
            t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics {names} have partitions without a leader after {timeout}s")
        await asyncio.sleep(0.1)
