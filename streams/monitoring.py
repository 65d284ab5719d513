"""Per-stage counts, errors and latencies, aggregated in memory and flushed to InfluxDB."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

from sinks.influx import InfluxTarget, InfluxWriter
from streams.settings import InfluxMonitoringSettings

log = logging.getLogger(__name__)


@dataclass
class StageCounters:
    processed: int = 0
    errors: int = 0
    batches: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0


class Monitor:
    """Stages `record` into it; `flush` writes one point per stage that saw traffic."""

    def __init__(self, writer: InfluxWriter | None) -> None:
        self.writer = writer
        self.host = socket.gethostname()
        self.worker = f"{self.host}-{os.getpid()}"  # several workers may share a host
        self._counters: dict[str, StageCounters] = {}

    def record(self, stage: str, processed: int, errors: int, seconds: float) -> None:
        counters = self._counters.setdefault(stage, StageCounters())
        per_message_ms = seconds * 1000.0 / max(processed + errors, 1)
        counters.processed += processed
        counters.errors += errors
        counters.batches += 1
        counters.latency_ms_sum += seconds * 1000.0
        counters.latency_ms_max = max(counters.latency_ms_max, per_message_ms)

    async def flush(self) -> int:
        if self.writer is None or not self._counters:
            return 0
        counters, self._counters = self._counters, {}
        for stage, c in counters.items():
            handled = max(c.processed + c.errors, 1)
            self.writer.add(
                "facestream_stage",
                {"stage": stage, "host": self.host, "worker": self.worker},
                {
                    "processed": c.processed,
                    "errors": c.errors,
                    "batches": c.batches,
                    "latency_ms_mean": c.latency_ms_sum / handled,
                    "latency_ms_max": c.latency_ms_max,
                },
            )
        # The HTTP post runs off the event loop so a slow InfluxDB never stalls a stage.
        return await asyncio.to_thread(self.writer.flush)


def create_monitor(settings: InfluxMonitoringSettings) -> Monitor:
    if not settings.send_data_for_monitoring:
        return Monitor(None)
    target = InfluxTarget(
        host=settings.host,
        port=settings.port,
        use_ssl=settings.use_ssl,
        database=settings.database,
        organization=settings.organization,
        bucket=settings.bucket,
        token=settings.token,
        version=settings.version,
    )
    log.info("monitoring points go to InfluxDB at %s", target.base_url)
    return Monitor(InfluxWriter(target))
