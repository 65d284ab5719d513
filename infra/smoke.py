"""Round-trip check of the stack started by infra/stack.sh, with the project's own clients.

    .venv/bin/python infra/smoke.py

Kafka (aiokafka): produce and consume one small and one 12 MiB record on a fresh topic, and one
record on a compacted topic. ClickHouse (clickhouse-driver, native port): SELECT version(), a
MergeTree write and read. InfluxDB (HTTP 1.x API): /ping, a line-protocol write and an InfluxQL
query. Reads the same FACESTREAM_* port variables as infra/lib.sh. Exit 0 when all pass.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid

HOST = os.environ.get("FACESTREAM_HOST", "127.0.0.1")
KAFKA = f"{HOST}:{os.environ.get('FACESTREAM_KAFKA_PORT', '19092')}"
CH_PORT = int(os.environ.get("FACESTREAM_CLICKHOUSE_TCP_PORT", "19000"))
INFLUX = f"http://{HOST}:{os.environ.get('FACESTREAM_INFLUXDB_PORT', '18086')}"
INFLUX_DB = os.environ.get("FACESTREAM_INFLUXDB_DB", "facestream")
BIG = 12 * 1024 * 1024


async def kafka_roundtrip() -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    compacted = f"{topic}-compacted"
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(compacted, 1, 1, topic_configs={"cleanup.policy": "compact"})]
        )
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, compacted, {"cleanup.policy": None})]
        )
        configs = {c[0]: c[1] for c in described[0].resources[0][4]}
        assert configs.get("cleanup.policy") == "compact", configs
    finally:
        await admin.close()

    big = os.urandom(BIG)
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA,
        max_request_size=16 * 1024 * 1024,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")  # auto-created topic
        await producer.send_and_wait(topic, big, key=b"big")
        await producer.send_and_wait(compacted, b"v1", key=b"same")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA,
        auto_offset_reset="earliest",
        group_id=f"{topic}-group",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    got: dict[bytes, bytes] = {}
    try:
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for r in records:
                    got[r.key] = r.value
        partitions = len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()
    assert got.get(b"k") == b"hello", got.keys()
    assert got.get(b"big") == big, "12 MiB record did not come back intact"
    return (
        f"kafka {KAFKA}: produced+consumed 'hello' and a 12 MiB record ({partitions} partitions),"
        " compacted topic created"
    )


def clickhouse_roundtrip() -> str:
    from clickhouse_driver import Client

    c = Client(host=HOST, port=CH_PORT, user="default", password="", connect_timeout=5)
    version = c.execute("SELECT version()")[0][0]
    c.execute(
        "CREATE TABLE IF NOT EXISTS default.smoke (t DateTime, v UInt32) "
        "ENGINE = MergeTree ORDER BY t"
    )
    c.execute("INSERT INTO default.smoke (t, v) VALUES", [(int(time.time()), 42)])
    n = c.execute("SELECT count() FROM default.smoke")[0][0]
    c.disconnect()
    return f"clickhouse {HOST}:{CH_PORT}: version {version}, default.smoke has {n} rows"


def influx_roundtrip() -> str:
    with urllib.request.urlopen(f"{INFLUX}/ping", timeout=5) as r:
        version = r.headers.get("X-Influxdb-Version")
    line = f"smoke,host=local value=42i {time.time_ns()}".encode()
    req = urllib.request.Request(
        f"{INFLUX}/write?db={INFLUX_DB}&precision=ns", data=line, method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 204, r.status
    q = urllib.parse.urlencode({"db": INFLUX_DB, "q": "SELECT count(value) FROM smoke"})
    with urllib.request.urlopen(f"{INFLUX}/query?{q}", timeout=5) as r:
        body = json.load(r)
    count = body["results"][0]["series"][0]["values"][0][1]
    return f"influxdb {INFLUX}: version {version}, db {INFLUX_DB} smoke count {count}"


def main() -> int:
    failed = 0
    for name, check in (
        ("kafka", lambda: asyncio.run(kafka_roundtrip())),
        ("clickhouse", clickhouse_roundtrip),
        ("influxdb", influx_roundtrip),
    ):
        t0 = time.monotonic()
        try:
            print(f"ok   {check()} [{(time.monotonic() - t0) * 1000:.0f} ms]")
        except Exception as exc:
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
