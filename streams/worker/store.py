"""The store agents: each takes a batch from its topic, writes it to ClickHouse, and only then
lets its offsets be committed.

- ClickHouse unavailable: the flush is retried with a doubling wait (storage.retry_initial_s up
  to retry_max_s) for as long as it takes. The agent body does not return meanwhile, so Faust
  does not acknowledge the batch, and the backlog drains once ClickHouse is back.
- Rows ClickHouse refuses are isolated by the sink: the rest is stored, each refused message is
  dead-lettered with the reason (`storage_refused`) and the letters are delivered before the
  batch is acknowledged.
- Anything else (a bug, a flush over storage.flush_timeout_s: a wedged client) stops the worker
  before the batch is acknowledged (deadletters.finish_batch), so the supervisor restarts
  it and the batch is redelivered: never an agent that is gone while the process looks alive.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
from faust.types import EventT

import schemas
from processors.errors import ProcessingError
from schemas.records import Context, Face, Reextraction, Sample
from sinks.clickhouse import connect
from sinks.migrate import SchemaBehind, require_newest, upgrade
from sinks.store import EventSink, FaceSink, ReextractionSink, SampleSink
from sinks.types import Refusal, RowsRefused, Sink, StorageUnavailable
from streams.control.reload import SHUTDOWN_EXIT_CODE
from streams.kafka import topics
from streams.kafka.gallery import InvalidRecord, face_vectors
from streams.worker.agents import Pipeline, _batches
from streams.worker.deadletters import finish_batch
from streams.worker.runner import Sent, dead_letter

log = logging.getLogger(__name__)

REFUSED = "storage_refused"

Storable = Callable[[EventT[bytes]], Any]  # the sink's item from a message; raises SchemaError
Ids = Context | Reextraction  # what has the event and account ids of an item
IdsOf = Callable[[Any], Ids | None]  # an item's ids, when it has them


def register(pipeline: Pipeline) -> None:
    """Connects and registers one agent per stored topic. Migrations run once per deployment
    (`facestream db upgrade`): a worker on a server with an older schema exits 78 at start.
    Embedded chDB is one process's own, so that worker upgrades it (nothing to race)."""
    storage = pipeline.settings.storage
    client = connect(storage.clickhouse_url, storage.chdb_path)
    # Closed before the interpreter tears down: chDB left open crashes the process at exit.
    atexit.register(client.close)
    if not storage.clickhouse_url:
        applied = upgrade(client, storage.database)
        log.info("ClickHouse at %s: %d migrations applied", client.url, len(applied))
    try:
        require_newest(client, storage.database)
    except SchemaBehind as behind:
        log.critical(
            "ClickHouse schema is at version %d, this worker needs %d: run `facestream db upgrade`",
            behind.current,
            behind.needed,
        )
        raise SystemExit(SHUTDOWN_EXIT_CODE) from None
    # One thread owns the client: chDB and the native driver are not for concurrent use.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    def value(spec: topics.TopicSpec[Any]) -> Storable:
        return lambda event: spec.decode(event.value)

    def key_of(event: EventT[bytes], what: str) -> str:
        try:
            key = bytes(event.key or b"").decode()  # a None value deletes what the key names
        except UnicodeDecodeError as exc:
            raise schemas.SchemaError("bad_key", f"the {what} id is not UTF-8: {exc}") from None
        if not key:
            raise schemas.SchemaError("bad_key", f"a {what} message needs the {what} id as its key")
        return key

    def keyed_sample(event: EventT[bytes]) -> tuple[str, Sample | None]:
        sample_id = key_of(event, "sample")
        sample = None if event.value is None else topics.SAMPLES.decode(event.value)
        if sample is not None and sample["sample_id"] != sample_id:
            raise schemas.SchemaError(
                "bad_key", f"sample {sample['sample_id']} under the key {sample_id}"
            )
        return sample_id, sample

    def keyed_face(event: EventT[bytes]) -> tuple[str, Face | None]:
        face_id = key_of(event, "face")
        face = None if event.value is None else topics.FACES.decode(event.value)
        if face is not None:
            try:  # the check every follower of the faces topic makes
                face_vectors(face)
            except InvalidRecord as invalid:
                raise schemas.SchemaError("out_of_range", f"face {face_id}: {invalid}") from None
        return face_id, face

    def reextracted(item: Reextraction) -> Reextraction | None:
        return item if item["event_id"] else None  # has event_id and account_id

    db = storage.database
    stores: list[tuple[str, Sink[Any], Storable, IdsOf]] = [
        ("events", EventSink(client, db), value(topics.EVENTS), lambda item: item["context"]),
        ("faces", FaceSink(client, db), keyed_face, lambda item: None),
        ("samples", SampleSink(client, db), keyed_sample, lambda item: None),
        ("reextractions", ReextractionSink(client, db), value(topics.REEXTRACTIONS), reextracted),
    ]
    for source, sink, storable, context in stores:
        agent = StoreAgent(pipeline, f"store_{source}", sink, storable, context, executor)
        pipeline.app.agent(pipeline.topics[source], name=f"facestream.{agent.name}")(agent.run)


class StoreAgent:
    def __init__(
        self,
        pipeline: Pipeline,
        name: str,
        sink: Sink[Any],
        storable: Storable,
        context: IdsOf,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.sink = sink
        self.storable = storable
        self.context = context
        self.executor = executor
        self.storage = pipeline.settings.storage

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        async for events in _batches(
            stream, self.storage.batch_size, self.storage.flush_interval_s
        ):
            await finish_batch(self.name, events, self.store(events))

    async def store(self, events: Sequence[EventT[bytes]]) -> None:
        started = time.perf_counter()
        pipeline, letters = self.pipeline, list[Sent]()
        for event in events:
            try:
                item = self.storable(event)
            except schemas.SchemaError as error:
                letters.append(await dead_letter(pipeline.port, self.name, event, error, None))
                continue
            self.sink.add(item, tag=(event, self.context(item)))
        written, refused = await self.flush()
        for refusal in refused:
            event, context = cast(tuple[EventT[bytes], Ids | None], refusal.tag)
            log.warning("%s: ClickHouse refused a message: %s", self.name, refusal.reason)
            refused_here = ProcessingError(refusal.reason, code=REFUSED)
            letters.append(
                await dead_letter(pipeline.port, self.name, event, refused_here, context)
            )
        await asyncio.gather(*letters)  # delivered before the batch is acknowledged
        pipeline.monitor.count(self.name, rows_refused=len(refused))
        pipeline.monitor.record(self.name, written, len(letters), time.perf_counter() - started)

    async def flush(self) -> tuple[int, list[Refusal]]:
        """Flushes until ClickHouse takes the batch: (items written, items refused)."""
        loop = asyncio.get_running_loop()
        delay, failures = self.storage.retry_initial_s, 0
        while True:
            try:
                flushing = loop.run_in_executor(self.executor, self.sink.flush)
                written = await asyncio.wait_for(flushing, self.storage.flush_timeout_s)
                refused: list[Refusal] = []
            except RowsRefused as exc:
                written, refused = exc.written, exc.refused
            except StorageUnavailable as exc:
                failures += 1
                self.pipeline.monitor.count(self.name, flush_failures=1)
                if failures == 1:
                    log.error(
                        "%s: ClickHouse does not take writes (%s); retrying, offsets wait",
                        self.name,
                        exc,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.storage.retry_max_s)
                self.pipeline.monitor.count(self.name, flush_retries=1)
                continue
            except TimeoutError as exc:
                raise RuntimeError(
                    f"a flush ran over {self.storage.flush_timeout_s} s: the client is wedged"
                ) from exc
            if failures:
                log.warning(
                    "%s: ClickHouse takes writes again after %d failures", self.name, failures
                )
            return written, refused
