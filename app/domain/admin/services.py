"""The monitoring report: every component's live figures plus the last hour's samples as charts."""

from __future__ import annotations

import asyncio
import time

from app.core.cluster import Cluster, cluster_state
from app.core.monitoring import (
    Sample,
    count_restarts,
    guarded,
    read_samples,
    short_error,
    snapshot,
)
from app.core.resources import Resources
from app.domain.admin.schemas import Chart, Ingest, MonitoringReport, Realtime
from app.realtime.publish import WebSocketService

CHARTS: tuple[tuple[str, str, str], ...] = (
    ("ingest_per_minute", "Events accepted per minute", "per_minute"),
    ("queue_ready", "Jobs waiting", "count"),
    ("dead_letters", "Dead letters", "count"),
    ("websocket_connections", "WebSocket connections", "count"),
    ("pg_connections", "PostgreSQL connections", "count"),
    ("redis_memory_bytes", "Redis memory", "bytes"),
    ("redis_ops_per_second", "Redis operations per second", "count"),
    ("rollup_lag_seconds", "Worst rollup lag", "seconds"),
    ("cpu_percent", "CPU of Beacon's processes", "percent"),
    ("memory_bytes", "Memory of Beacon's processes", "bytes"),
)
"""(Sample field, title, unit) of each chart."""


def charts(samples: list[Sample]) -> list[Chart]:
    result = []
    for key, title, unit in CHARTS:
        points = [(sample.at, _value(getattr(sample, key))) for sample in samples]
        latest = next((value for _, value in reversed(points) if value is not None), None)
        result.append(Chart(key=key, title=title, unit=unit, points=points, latest=latest))
    return result


def _value(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


async def _guarded_cluster(resources: Resources, timeout: float) -> Cluster | None:
    """The cluster part (None on a single host), or a part carrying why Patroni did not answer."""
    if not resources.settings.database.patroni_urls and not resources.settings.redis.sentinels:
        return None
    return await guarded(_cluster(resources), lambda e: Cluster(error=e), timeout)


async def _cluster(resources: Resources) -> Cluster:
    return await cluster_state(resources.settings) or Cluster()


async def _realtime(resources: Resources) -> Realtime:
    return Realtime(stats=await WebSocketService(resources.redis, resources.keys).stats())


async def monitoring_report(resources: Resources) -> MonitoringReport:
    """Collect every part concurrently; a component that is away turns its part into an ``error``."""
    timeout = resources.settings.http_client.timeout
    parts, realtime, history, cluster = await asyncio.gather(
        snapshot(resources.settings, resources.engine, resources.redis, resources.keys),
        guarded(_realtime(resources), lambda e: Realtime(error=e), timeout),
        asyncio.wait_for(read_samples(resources.redis, resources.keys), timeout),
        _guarded_cluster(resources, timeout),
        return_exceptions=True,
    )
    if isinstance(parts, BaseException):  # snapshot guards every part itself; this is a defect, not an outage
        raise parts
    if isinstance(realtime, BaseException):
        raise realtime
    if isinstance(cluster, BaseException):
        raise cluster
    samples: list[Sample] = []
    charts_error = None
    if isinstance(history, BaseException):
        charts_error = f"The last hour's samples are unavailable: {short_error(history)}"
    else:
        samples = history
    count_restarts(parts.processes.watchers, samples)
    latest = next((s for s in reversed(samples) if s.ingest_per_minute is not None), None)
    ingest = Ingest(counters=parts.ingest, error=None,
                    per_minute=latest.ingest_per_minute if latest else None,
                    per_minute_source=latest.ingest_source if latest else "none")
    return MonitoringReport(
        generated_at=time.time(), processes=parts.processes, postgres=parts.postgres, redis=parts.redis,
        queues=parts.queues, realtime=realtime, ingest=ingest, rollups=parts.rollups, charts=charts(samples),
        charts_error=charts_error, cluster=cluster)


SPARK_WIDTH, SPARK_HEIGHT = 240, 48


def sparkline(chart: Chart, window: float = 3600.0) -> list[str]:
    """SVG polyline ``points`` of a chart over the last ``window`` seconds, one polyline per unbroken run."""
    end = chart.points[-1][0] if chart.points else 0.0
    values = [value for _, value in chart.points if value is not None]
    top = max(values, default=0.0) or 1.0
    runs: list[list[str]] = [[]]
    for at, value in chart.points:
        if value is None:
            runs.append([])
            continue
        x = SPARK_WIDTH * (1 - (end - at) / window)
        y = SPARK_HEIGHT - 2 - (SPARK_HEIGHT - 4) * value / top
        runs[-1].append(f"{max(x, 0.0):.1f},{y:.1f}")
    # A lone sample is drawn as a dot: a zero-length line with round caps.
    return [" ".join(run * 2 if len(run) == 1 else run) for run in runs if run]


def human_bytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} days"


def human(value: float | None, unit: str) -> str:
    """A chart's latest value for people: bytes in KiB/MiB, seconds in min/h, counts as numbers."""
    if value is None:
        return "n/a"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "seconds":
        return human_seconds(value)
    if unit == "percent":
        return f"{value:.1f} %"
    return f"{value:,.1f}".removesuffix(".0") if unit == "per_minute" else f"{value:,.0f}"
