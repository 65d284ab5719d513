"""Accepted ingest requests per second through the API into Kafka, beside a bare aiokafka
producer sending the same image payload, measured in one run. Prints a JSON object last.

The load comes from wrk (Debian's `wrk`; apt-get install wrk), which costs far less CPU per
request than any Python client, so the API, not the load generator, is what is measured.
Rounds alternate the API and the bare producers, so a noisy spell of a shared machine hits
both alike; medians are reported. Two bare producers: aiokafka's defaults with linger_ms=5
(`bare_producer_per_s`, what `ratio` divides by) and the producer the API itself uses
(`image_producer`: bigger batches; `ratio_same_producer`). Needs the stack: bash
infra/stack.sh start.

    .venv/bin/python bench/api_ingest.py --seconds 10 --connections 32 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.client.folders import IMAGE_EXTENSIONS, read_folder
from streams.control.launch import REPO, ApiProcess, stack_env
from streams.kafka import topics
from streams.kafka.images import image_producer
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


async def bare_producer(
    make: Callable[[], AIOKafkaProducer], settings: Settings, data: bytes, seconds: float
) -> float:
    """Sends per second, every send acknowledged by the end (acks=all, as the API's)."""
    producer = make()
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--testdata", type=Path, default=REPO / ".facestream/testdata")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    run = uuid.uuid4().hex[:8]
    env = stack_env() | {"FACESTREAM_KAFKA__TOPIC_PREFIX": f"apibench{run}"}
    os.environ.update(env)
    settings = Settings()
    image = read_folder(args.testdata / "johns", IMAGE_EXTENSIONS)[0]
    data = image.read_bytes()
    producers: dict[str, Callable[[], AIOKafkaProducer]] = {
        "bare": lambda: topics.producer(settings.kafka, linger_ms=5),
        "same": lambda: image_producer(settings.kafka),
    }
    rates: dict[str, list[float]] = {"api": [], "bare": [], "same": []}
    refused = 0
    api = ApiProcess(env, REPO / ".facestream" / f"apibench-{run}.log")
    try:
        api.wait_ready()
        through_api(api.origin, image, 2, args.connections)  # warm up
        for _ in range(args.rounds):
            rate, not_accepted = through_api(api.origin, image, args.seconds, args.connections)
            rates["api"].append(rate)
            refused += not_accepted
            for name, make in producers.items():
                rates[name].append(asyncio.run(bare_producer(make, settings, data, args.seconds)))
    finally:
        api.stop()
        asyncio.run(topics.delete_deployment_topics(settings.kafka))  # every round's images
    api_rate, bare_rate, same_rate = (statistics.median(rates[k]) for k in ("api", "bare", "same"))
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "rounds": args.rounds,
                "image_bytes": len(data),
                "connections": args.connections,
                "api_accepted_per_s": round(api_rate, 1),
                "api_not_accepted": refused,
                "bare_producer_per_s": round(bare_rate, 1),
                "ratio": round(api_rate / bare_rate, 3),
                "ratios": [
                    round(a / b, 3) for a, b in zip(rates["api"], rates["bare"], strict=True)
                ],
                "same_producer_per_s": round(same_rate, 1),
                "ratio_same_producer": round(api_rate / same_rate, 3),
                "ratios_same_producer": [
                    round(a / b, 3) for a, b in zip(rates["api"], rates["same"], strict=True)
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
