"""Per-stage counts, errors and latencies, aggregated in memory and flushed to InfluxDB."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass

from sinks.influx import InfluxTarget, InfluxWriter
from streams.settings import InfluxMonitoringSettings, LiveSettings, Settings

log = logging.getLogger(__name__)


@dataclass
class StageCounters:
    processed: int = 0
    errors: int = 0
    batches: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0
    # store stages: flushes ClickHouse did not take, their retries, rows it refused
    flush_failures: int = 0
    flush_retries: int = 0
    rows_refused: int = 0


def influx_target(settings: InfluxMonitoringSettings) -> InfluxTarget:
    return InfluxTarget(
        host=settings.host,
        port=settings.port,
        use_ssl=settings.use_ssl,
        database=settings.database,
        organization=settings.organization,
        bucket=settings.bucket,
        token=settings.token,
        version=settings.version,
    )


class Monitor:
    """Stages `record` into it; `tick` (often) flushes one point per stage that saw traffic once
    the current flushing period has passed. Follows INFLUX_MONITORING changes live."""

    TICK_S = 0.25

    def __init__(self, live: LiveSettings) -> None:
        self.live = live
        self.host = socket.gethostname()
        self.worker = f"{self.host}-{os.getpid()}"  # several workers may share a host
        self.writer = self._writer(live.current.influx_monitoring)
        self._counters: dict[str, StageCounters] = {}
        self._last_flush = time.monotonic()
        self._dropped_exported = 0
        live.subscribe(self._on_settings)

    @staticmethod
    def _writer(settings: InfluxMonitoringSettings) -> InfluxWriter | None:
        if not settings.send_data_for_monitoring:
            return None
        target = influx_target(settings)
        log.info("monitoring points go to InfluxDB at %s", target.base_url)
        return InfluxWriter(target)

    def _on_settings(self, old: Settings, new: Settings) -> None:
        if old.influx_monitoring != new.influx_monitoring:
            self.writer = self._writer(new.influx_monitoring)

    def record(self, stage: str, processed: int, errors: int, seconds: float) -> None:
        counters = self._counters.setdefault(stage, StageCounters())
        per_message_ms = seconds * 1000.0 / max(processed + errors, 1)
        counters.processed += processed
        counters.errors += errors
        counters.batches += 1
        counters.latency_ms_sum += seconds * 1000.0
        counters.latency_ms_max = max(counters.latency_ms_max, per_message_ms)

    def count(
        self, stage: str, *, flush_failures: int = 0, flush_retries: int = 0, rows_refused: int = 0
    ) -> None:
        counters = self._counters.setdefault(stage, StageCounters())
        counters.flush_failures += flush_failures
        counters.flush_retries += flush_retries
        counters.rows_refused += rows_refused

    async def tick(self) -> int:
        period = self.live.current.influx_monitoring.flushing_period
        if time.monotonic() - self._last_flush < period:
            return 0
        self._last_flush = time.monotonic()
        return await self.flush()

    async def flush(self) -> int:
        writer = self.writer
        if writer is None:
            self._counters.clear()
            return 0
        if writer.dropped != self._dropped_exported:
            # Cumulative, like `written`: the points lost while InfluxDB was away show up once
            # it answers again.
            self._dropped_exported = writer.dropped
            writer.add(
                "facestream_monitoring",
                {"host": self.host, "worker": self.worker},
                {"dropped_points": writer.dropped, "written_points": writer.written},
            )
        elif not self._counters:
            return 0
        counters, self._counters = self._counters, {}
        for stage, c in counters.items():
            handled = max(c.processed + c.errors, 1)
            writer.add(
                "facestream_stage",
                {"stage": stage, "host": self.host, "worker": self.worker},
                {
                    "processed": c.processed,
                    "errors": c.errors,
                    "batches": c.batches,
                    "latency_ms_mean": c.latency_ms_sum / handled,
                    "latency_ms_max": c.latency_ms_max,
                    "flush_failures": c.flush_failures,
                    "flush_retries": c.flush_retries,
                    "rows_refused": c.rows_refused,
                },
            )
        # The HTTP post runs off the event loop so a slow InfluxDB never stalls a stage.
        return await asyncio.to_thread(writer.flush)
