"""Accepted ingest requests per second through the API into Kafka, beside a bare aiokafka
producer sending the same image payloads, measured in one run. Prints a JSON object last.
Needs the stack: bash infra/stack.sh start.

    .venv/bin/python bench/api_ingest.py --requests 2000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.client import IMAGE_EXTENSIONS, read_folder
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.integration.conftest import ApiProcess, _stack_env  # noqa: E402


async def through_api(origin: str, images: list[bytes], concurrency: int) -> float:
    headers = {"Luna-Account-Id": str(uuid.uuid4()), "content-type": "image/jpeg"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=origin, limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def post(data: bytes) -> None:
            async with gate:
                response = await client.post("/v1/images", headers=headers, content=data)
                if response.status_code != 202:
                    raise RuntimeError(f"{response.status_code}: {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(post(data) for data in images))
        return len(images) / (time.perf_counter() - started)


async def bare_producer(settings: Settings, images: list[bytes]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers(settings.kafka),
        max_request_size=settings.kafka.max_message_bytes,
        linger_ms=5,
        acks="all",
    )
    await producer.start()
    try:
        name = f"{settings.kafka.topic_prefix}.bare_images"
        started = time.perf_counter()
        for data in images:
            await producer.send(name, data, key=str(uuid.uuid4()).encode())
        await producer.flush()
        return len(images) / (time.perf_counter() - started)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--testdata", type=Path, default=REPO / ".facestream/testdata")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    env = _stack_env() | {
        "FACESTREAM_KAFKA__TOPIC_PREFIX": f"apibench{run}",
        "FACESTREAM_WORKER__LOGGING_LEVEL": "WARNING",
    }
    os.environ.update(env)
    settings = Settings()
    files = read_folder(args.testdata / "johns", IMAGE_EXTENSIONS)
    images = [files[i % len(files)].read_bytes() for i in range(args.requests)]
    api = ApiProcess(env, REPO / ".facestream" / f"apibench-{run}.log")
    try:
        api.wait_ready()
        asyncio.run(through_api(api.origin, images[:100], args.concurrency))  # warm up
        api_rate = asyncio.run(through_api(api.origin, images, args.concurrency))
    finally:
        api.stop()
    bare_rate = asyncio.run(bare_producer(settings, images))
    print(
        json.dumps(
            {
                "requests": len(images),
                "mean_image_bytes": sum(map(len, images)) // len(images),
                "concurrency": args.concurrency,
                "api_accepted_per_s": round(api_rate, 1),
                "bare_producer_per_s": round(bare_rate, 1),
                "ratio": round(api_rate / bare_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
