"""Accepted ingest requests per second through the API into Kafka, beside a bare aiokafka
producer sending the same image payload, measured in one run. Prints a JSON object last.

The load comes from wrk (Debian's `wrk`; apt-get install wrk), which costs far less CPU per
request than any Python client, so the API, not the load generator, is what is measured.
Needs the stack: bash infra/stack.sh start.

    .venv/bin/python bench/api_ingest.py --seconds 10 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import REPO, ApiProcess, stack_env
from streams.kafka import topics
from streams.settings import Settings

WRK_SCRIPT = """
local f = io.open("{image}", "rb"); local body = f:read("*all"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Luna-Account-Id"] = "{account}"
"""


def through_api(origin: str, image: Path, seconds: int, connections: int) -> tuple[float, int]:
    """(accepted requests per second, requests not answered 202) under wrk's load."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT.format(image=image, account=uuid.uuid4()))
        script.flush()
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "-s",
                script.name,
                f"{origin}/v1/images",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(refused[1]) if refused else 0


async def bare_producer(settings: Settings, data: bytes, seconds: float) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers(settings.kafka),
        max_request_size=settings.kafka.max_message_bytes,
        linger_ms=5,
        acks="all",
    )
    await producer.start()
    try:
        name = f"{settings.kafka.topic_prefix}.bare_images"
        await producer.send_and_wait(name, data)  # creates the topic before timing
        sent, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            await producer.send(name, data, key=str(uuid.uuid4()).encode())
            sent += 1
        await producer.flush()
        return sent / (time.perf_counter() - started)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--testdata", type=Path, default=REPO / ".facestream/testdata")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    run = uuid.uuid4().hex[:8]
    env = stack_env() | {"FACESTREAM_KAFKA__TOPIC_PREFIX": f"apibench{run}"}
    os.environ.update(env)
    settings = Settings()
    image = read_folder(args.testdata / "johns", IMAGE_EXTENSIONS)[0]
    api = ApiProcess(env, REPO / ".facestream" / f"apibench-{run}.log")
    try:
        api.wait_ready()
        through_api(api.origin, image, 2, args.connections)  # warm up
        api_rate, refused = through_api(api.origin, image, args.seconds, args.connections)
    finally:
        api.stop()
    bare_rate = asyncio.run(bare_producer(settings, image.read_bytes(), args.seconds))
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "image_bytes": image.stat().st_size,
                "connections": args.connections,
                "api_accepted_per_s": round(api_rate, 1),
                "api_not_accepted": refused,
                "bare_producer_per_s": round(bare_rate, 1),
                "ratio": round(api_rate / bare_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
