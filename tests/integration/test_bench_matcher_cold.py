"""bench/matcher.py's cold start against the real broker: a faces topic produced, a bare
consumer and a `--stages match` worker reading all of it, the run's topics deleted after."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.control.launch import stack_env
from streams.worker.gallery_follower import DECODERS_FROM
from tests.unit.test_bench_matcher import run_bench

pytestmark = pytest.mark.integration


async def bench_topics() -> list[str]:
    broker = stack_env()["FACESTREAM_KAFKA__BROKER"].removeprefix("kafka://")
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith("benchmatcher")]
    finally:
        await admin.close()


@pytest.mark.slow
def test_cold_start_reads_the_whole_topic_and_deletes_it() -> None:
    before = set(asyncio.run(bench_topics()))  # another run's, going on now
    # Over gallery_follower.DECODERS_FROM: the worker decodes its load in a process pool.
    faces = DECODERS_FROM + 10_000
    cold = run_bench("--faces", "1000", "--batches", "4", "--cold-faces", str(faces))["cold_start"]

    assert set(cold) == {
        "faces",
        "produced_faces_per_s",
        "bare_consumer_faces_per_s",
        "worker_ready_s",
        "worker_ready_empty_topic_s",
        "worker_faces_per_s",
        "ratio",
        "ratio_net_of_start",
    }
    assert cold["faces"] == faces  # the bench checks the worker's "gallery loaded: N faces"
    assert cold["worker_ready_s"] > 0 and cold["bare_consumer_faces_per_s"] > 0
    assert cold["ratio"] == pytest.approx(
        cold["worker_faces_per_s"] / cold["bare_consumer_faces_per_s"], abs=0.002
    )
    assert set(asyncio.run(bench_topics())) <= before
