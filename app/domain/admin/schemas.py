"""Bodies of the admin API: the monitoring report (``GET /api/admin/monitoring``)."""

from __future__ import annotations

import msgspec

from app.core.cluster import Cluster
from app.core.monitoring import IngestCounts, Part, Postgres, Processes, Queues, RedisInfo, RollupLag
from app.realtime.publish import RealtimeStats


class Realtime(Part, kw_only=True):
    stats: RealtimeStats | None = None
    """WebSocket connections in total, per room, per channel and per process (as ``GET /api/admin/realtime``)."""


class Ingest(Part, kw_only=True):
    counters: IngestCounts
    """Ingest's own counters since its processes started, from its ``GET /metrics`` on loopback."""
    per_minute: float | None = None
    """Events accepted in the latest sampled minute."""
    per_minute_source: str = "none"
    """``metrics`` (ingest's counter) or ``database`` (events stored, when /metrics was unavailable)."""


class Chart(msgspec.Struct):
    key: str
    title: str
    unit: str
    """``count``, ``per_minute``, ``bytes``, ``percent`` or ``seconds``."""
    points: list[tuple[float, float | None]]
    """(Unix time, value) once a minute over the last hour, oldest first; ``None`` where a component was away."""
    latest: float | None


class MonitoringReport(msgspec.Struct, kw_only=True):
    """Every component's figures; a part whose component is away carries ``error`` and the rest still shows."""

    generated_at: float
    processes: Processes
    postgres: Postgres
    redis: RedisInfo
    queues: Queues
    realtime: Realtime
    ingest: Ingest
    rollups: RollupLag
    charts: list[Chart]
    charts_error: str | None = None
    """Why the charts are empty (Redis away), else ``None``; a chart also stays empty before the first sample."""
    cluster: Cluster | None = None
    """On several hosts: the PostgreSQL members from Patroni (role, state, lag) and the Redis master named by
    the Sentinels; ``None`` on a single host (app/core/cluster.py)."""
