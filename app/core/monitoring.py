"""Figures of the monitoring page: processes (circusd), PostgreSQL, Redis, queues, ingest, rollups.

Each collector reads one component and raises when it is away; :func:`guarded` turns that into a part with an
``error`` so the page degrades part by part. The one-minute samples behind the page's charts live in a
bounded Redis list (:func:`record_sample`, :func:`read_samples`): a chart of the last hour needs 60 small
values, Redis trims them by itself (``LTRIM``), and no table or migration has to exist for them; when Redis
is away the charts are what is lost, and they refill within the hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import msgspec
import redis.asyncio as aioredis
from circus.client import CircusClient
from circus.util import human2bytes
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import make_async_engine
from app.core.redis import Keys, make_async_redis
from app.core.settings import Settings

SAMPLES_KEPT = 60
"""One sample a minute for an hour."""
SAMPLE_INTERVAL = 60.0
"""Seconds between samples (the scheduler's ``sample_monitoring`` job)."""
ROLLUP_FINAL_AFTER_DAYS = 2
"""Days after which a local day is rolled up (``services.analytics.rollups.FINAL_AFTER_DAYS``)."""
TOP = 15
"""Rows in the tables of the biggest relations and slowest statements."""
QUEUES = ("analytics", "imports", "ingest", "integrations", "system")
"""The workers' Dramatiq queues (``queue_name`` of ``workers.actors``): listed even when empty, since Redis drops
an empty list's key."""
"""Rows in the tables of the biggest relations and slowest statements."""


class Part(msgspec.Struct, kw_only=True):
    error: str | None = None
    """Why this part is missing (the component is away or refused), else ``None``."""


class ProcessStats(msgspec.Struct):
    pid: int
    cpu_percent: float | None
    """CPU use since circusd's previous look at this process, in percent of one core."""
    memory_bytes: int | None
    """Resident set size."""
    memory_percent: float | None
    uptime_seconds: float | None


class WatcherStats(msgspec.Struct):
    name: str
    processes: list[ProcessStats]
    restarts_last_hour: int | None = None
    """Processes of this watcher that were replaced within the last hour (from the samples), ``None`` before the
    first sample."""


class Processes(Part, kw_only=True):
    watchers: list[WatcherStats] = msgspec.field(default_factory=list)


class Relation(msgspec.Struct):
    name: str
    bytes: int
    table: str | None = None
    """The table an index belongs to."""
    rows: int | None = None
    """PostgreSQL's estimate (``pg_class.reltuples``) for tables; scans for indexes."""


class Statement(msgspec.Struct):
    query: str
    calls: int
    mean_ms: float
    total_ms: float
    rows: int


class Postgres(Part, kw_only=True):
    connections: dict[str, int] = msgspec.field(default_factory=dict)
    """This database's backends by state (``active``, ``idle``, ``idle in transaction``, ...)."""
    max_connections: int = 0
    commits: int = 0
    rollbacks: int = 0
    cache_hit_ratio: float | None = None
    """Share of block reads served from shared buffers since the statistics were reset (0..1)."""
    database_bytes: int = 0
    tables: list[Relation] = msgspec.field(default_factory=list)
    indexes: list[Relation] = msgspec.field(default_factory=list)
    statements: list[Statement] | None = None
    """The slowest statements by mean time when ``pg_stat_statements`` is installed, else ``None``."""
    statements_note: str | None = None


class RedisInfo(Part, kw_only=True):
    version: str = ""
    used_memory_bytes: int = 0
    maxmemory_bytes: int = 0
    ops_per_second: int = 0
    connected_clients: int = 0
    evicted_keys: int = 0
    uptime_seconds: int = 0


class Queue(msgspec.Struct):
    name: str
    ready: int
    delayed: int
    dead_letters: int


class Queues(Part, kw_only=True):
    queues: list[Queue] = msgspec.field(default_factory=list)


class IngestCounts(Part, kw_only=True):
    source: Literal["metrics", "database", "none"] = "none"
    accepted_total: float | None = None
    """``beacon_ingest_events_accepted_total`` summed over ingest's processes (since they started)."""
    dropped_total: dict[str, float] = msgspec.field(default_factory=dict)
    """``beacon_ingest_events_dropped_total`` by reason."""


class SiteLag(msgspec.Struct):
    domain: str
    rolled_until: str | None
    lag_seconds: float | None
    """How long the site's newest final day has been waiting to be rolled up; 0 when up to date, ``None`` when
    nothing was ever rolled up."""


class RollupLag(Part, kw_only=True):
    worst_seconds: float | None = None
    sites_behind: int = 0
    never_rolled: int = 0
    sites: list[SiteLag] = msgspec.field(default_factory=list)
    """The sites furthest behind, worst first."""


class Sample(msgspec.Struct, kw_only=True):
    """One minute's figures for the charts; ``None`` where a component was away."""

    at: float
    ingest_accepted: float | None = None
    """Ingest's ``beacon_ingest_events_accepted_total`` when its /metrics answered."""
    ingest_per_minute: float | None = None
    """Events accepted per minute: the counter's increase since the previous sample, or (without /metrics)
    the events PostgreSQL stored in the last minute."""
    ingest_source: str = "none"
    """``metrics`` or ``database``: where ``ingest_per_minute`` came from."""
    queue_ready: int | None = None
    dead_letters: int | None = None
    redis_memory_bytes: int | None = None
    redis_ops_per_second: int | None = None
    pg_connections: int | None = None
    websocket_connections: int | None = None
    rollup_lag_seconds: float | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    pids: dict[str, list[int]] = msgspec.field(default_factory=dict)
    """Process ids per watcher, from which restarts are counted."""


def short_error(exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


P = TypeVar("P", bound=Part)


async def guarded(collect: Awaitable[P], empty: Callable[[str], P], timeout: float) -> P:
    """The collected part, or ``empty(error)`` when the component is away, refuses or is too slow."""
    try:
        return await asyncio.wait_for(collect, timeout)
    except TimeoutError:
        return empty(f"no answer within {timeout:g} s")
    except Exception as exc:
        return empty(short_error(exc))


# -- circusd ---------------------------------------------------------------------------------------------------

def circus_endpoint(run_dir: Path) -> str:
    """circusd's control socket, as circus.ini declares it."""
    return f"ipc://{run_dir}/circus.sock"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _memory(value: Any) -> int | None:
    try:
        return int(human2bytes(value)) if isinstance(value, str) else None
    except (ValueError, KeyError):
        return None


def parse_circus_stats(answer: Mapping[str, Any]) -> list[WatcherStats]:
    """Watchers and processes from circusd's ``stats`` answer (``{"infos": {watcher: {pid: info}}}``)."""
    if answer.get("status") != "ok":
        raise RuntimeError(f"circusd answered {answer.get('status')}: {answer.get('reason', '')}".strip())
    watchers = []
    for name, infos in sorted((answer.get("infos") or {}).items()):
        if name.startswith("plugin:") or name == "circusd-stats":
            continue
        processes = []
        for pid, info in sorted((infos or {}).items(), key=lambda item: int(item[0])):
            if not isinstance(info, Mapping):  # "No such process (stopped?)"
                continue
            processes.append(ProcessStats(
                pid=int(pid), cpu_percent=_number(info.get("cpu")), memory_bytes=_memory(info.get("mem_info1")),
                memory_percent=_number(info.get("mem")), uptime_seconds=_number(info.get("age"))))
        watchers.append(WatcherStats(name=name, processes=processes))
    return watchers


def _circus_stats(endpoint: str, timeout: float) -> dict[str, Any]:
    client = CircusClient(endpoint=endpoint, timeout=timeout)
    try:
        answer: dict[str, Any] = client.call({"command": "stats", "properties": {}})
        return answer
    finally:
        client.stop()


async def processes(run_dir: Path, timeout: float) -> Processes:
    """Every watcher's processes with CPU, memory and uptime, from circusd over its control socket."""
    socket = run_dir / "circus.sock"
    if not socket.exists():
        raise FileNotFoundError(f"circusd's socket {socket} does not exist (circusd is not running)")
    answer = await asyncio.to_thread(_circus_stats, circus_endpoint(run_dir), timeout)
    return Processes(watchers=parse_circus_stats(answer))


def count_restarts(watchers: list[WatcherStats], samples: Iterable[Sample]) -> None:
    """Fill ``restarts_last_hour``: process ids seen in the last hour's samples that are gone now."""
    seen: dict[str, set[int]] = {}
    for sample in samples:
        for name, pids in sample.pids.items():
            seen.setdefault(name, set()).update(pids)
    if not seen:
        return
    for watcher in watchers:
        current = {proc.pid for proc in watcher.processes}
        watcher.restarts_last_hour = len(seen.get(watcher.name, set()) - current)


# -- PostgreSQL ------------------------------------------------------------------------------------------------

async def postgres(engine: AsyncEngine) -> Postgres:
    """Connections, transactions, cache hit ratio, sizes and (with pg_stat_statements) the slowest statements."""
    async with engine.connect() as conn:
        states = (await conn.execute(text(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() GROUP BY 1 ORDER BY 1"))).all()
        max_connections = int((await conn.execute(text("SHOW max_connections"))).scalar_one())
        db = (await conn.execute(text(
            "SELECT xact_commit, xact_rollback, blks_hit, blks_read, pg_database_size(datname) "
            "FROM pg_stat_database WHERE datname = current_database()"))).one()
        tables = (await conn.execute(text(
            "SELECT c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm') "
            "ORDER BY 2 DESC, 1 LIMIT :top"), {"top": TOP})).all()
        indexes = (await conn.execute(text(
            "SELECT indexrelname, relname, pg_relation_size(indexrelid), idx_scan FROM pg_stat_user_indexes "
            "WHERE schemaname = current_schema() ORDER BY 3 DESC, 1 LIMIT :top"), {"top": TOP})).all()
        has_statements = (await conn.execute(text(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"))).first() is not None
    hits, reads = int(db[2] or 0), int(db[3] or 0)
    part = Postgres(
        connections={str(state): int(count) for state, count in states}, max_connections=max_connections,
        commits=int(db[0] or 0), rollbacks=int(db[1] or 0),
        cache_hit_ratio=hits / (hits + reads) if hits + reads else None, database_bytes=int(db[4] or 0),
        tables=[Relation(name=name, bytes=int(size), rows=int(rows)) for name, size, rows in tables],
        indexes=[Relation(name=name, table=table, bytes=int(size), rows=int(scans or 0))
                 for name, table, size, scans in indexes])
    if not has_statements:
        part.statements_note = "pg_stat_statements is not installed in this database"
        return part
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT query, calls, mean_exec_time, total_exec_time, rows FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "ORDER BY mean_exec_time DESC LIMIT :top"), {"top": TOP})).all()
    except Exception as exc:  # installed but not in shared_preload_libraries
        part.statements_note = f"pg_stat_statements is not readable: {short_error(exc)}"
        return part
    part.statements = [Statement(query=" ".join(str(q).split())[:500], calls=int(calls), mean_ms=float(mean),
                                 total_ms=float(total), rows=int(n)) for q, calls, mean, total, n in rows]
    return part


async def rollup_lag(engine: AsyncEngine) -> RollupLag:
    """Per site, how long its newest final local day has waited to be rolled up (from ``rollup_state``).

    A local day is final ``ROLLUP_FINAL_AFTER_DAYS`` after it ends; a site whose ``rolled_until`` is older than
    that lags by the time since the first day that should have followed it became final.
    """
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            # greatest() ignores NULLs: a site never rolled up must stay NULL, not 0.
            "SELECT s.domain, r.rolled_until, CASE WHEN r.site_id IS NOT NULL THEN greatest(0, extract(epoch FROM "
            "  now() - ((r.rolled_until + 1 + :final)::timestamp AT TIME ZONE r.timezone))) END "
            "FROM sites s LEFT JOIN rollup_state r ON r.site_id = s.id "
            "ORDER BY 3 DESC NULLS LAST, 1"), {"final": ROLLUP_FINAL_AFTER_DAYS})).all()
    sites = [SiteLag(domain=domain, rolled_until=until.isoformat() if until else None,
                     lag_seconds=float(lag) if lag is not None else None) for domain, until, lag in rows]
    lags = [site.lag_seconds for site in sites if site.lag_seconds is not None]
    return RollupLag(worst_seconds=max(lags) if lags else None, sites_behind=sum(1 for lag in lags if lag > 0),
                     never_rolled=sum(1 for site in sites if site.lag_seconds is None),
                     sites=[site for site in sites if site.lag_seconds][:TOP])


async def events_last_minute(engine: AsyncEngine) -> float:
    """Events stored in the last 60 seconds: ingest's rate when its /metrics is unavailable (read by the sampling
    job in a worker, never by the api)."""
    async with engine.connect() as conn:
        value = (await conn.execute(text(
            "SELECT count(*) FROM events WHERE timestamp > now() - interval '60 seconds'"))).scalar_one()
    return float(value)


# -- Redis -----------------------------------------------------------------------------------------------------

async def redis_info(client: aioredis.Redis) -> RedisInfo:
    """Memory, operations per second, clients and evictions from ``INFO``."""
    info: dict[str, Any] = await client.info()
    return RedisInfo(
        version=str(info.get("redis_version", "")), used_memory_bytes=int(info.get("used_memory", 0)),
        maxmemory_bytes=int(info.get("maxmemory", 0)), ops_per_second=int(info.get("instantaneous_ops_per_sec", 0)),
        connected_clients=int(info.get("connected_clients", 0)), evicted_keys=int(info.get("evicted_keys", 0)),
        uptime_seconds=int(info.get("uptime_in_seconds", 0)))


def queue_names(keys: Iterable[str], namespace: str) -> list[str]:
    """Dramatiq's queue names among its Redis keys (``<ns>:<queue>``, ``.msgs``, ``.DQ``, ``.XQ`` suffixes)."""
    names = set()
    for key in keys:
        name = key.removeprefix(namespace + ":")
        if name == key or name.startswith("__"):
            continue
        for suffix in (".msgs", ".XQ", ".DQ"):
            name = name.removesuffix(suffix)
        names.add(name.removesuffix(".XQ").removesuffix(".DQ"))
    return sorted(names)


def dramatiq_namespace(keys: Keys) -> str:
    """The broker's key namespace (``workers.broker.configure``)."""
    return f"{keys.prefix}dramatiq"


async def queues(client: aioredis.Redis, keys: Keys) -> Queues:
    """Messages waiting, delayed (retries, ETAs) and dead-lettered per Dramatiq queue."""
    namespace = dramatiq_namespace(keys)
    found = [key.decode() if isinstance(key, bytes) else str(key)
             async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
    names = sorted(set(queue_names(found, namespace)) | set(QUEUES))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(f"{namespace}:{name}")
        pipe.llen(f"{namespace}:{name}.DQ")
        pipe.zcard(f"{namespace}:{name}.XQ")
    counts = await pipe.execute() if names else []
    return Queues(queues=[Queue(name=name, ready=int(counts[3 * i]), delayed=int(counts[3 * i + 1]),
                                dead_letters=int(counts[3 * i + 2])) for i, name in enumerate(names)])


# -- ingest's /metrics -----------------------------------------------------------------------------------------

def parse_ingest_metrics(exposition: str) -> IngestCounts:
    """Accepted and dropped-by-reason totals from Prometheus text (``beacon_ingest_events_*_total``)."""
    accepted: float | None = None
    dropped: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "beacon_ingest_events_accepted_total":
                accepted = (accepted or 0.0) + sample.value
            elif sample.name == "beacon_ingest_events_dropped_total":
                reason = sample.labels.get("reason", "unknown")
                dropped[reason] = dropped.get(reason, 0.0) + sample.value
    if accepted is None:
        raise ValueError("ingest's /metrics has no beacon_ingest_events_accepted_total")
    return IngestCounts(source="metrics", accepted_total=accepted, dropped_total=dropped)


async def ingest_counts(ingest_url: str, timeout: float) -> IngestCounts:
    """Ingest's counters from its ``GET /metrics`` on loopback."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.get(ingest_url.rstrip("/") + "/metrics")
    response.raise_for_status()
    return parse_ingest_metrics(response.text)


# -- samples ---------------------------------------------------------------------------------------------------

def samples_key(keys: Keys) -> str:
    return f"{keys.prefix}monitoring:samples"


async def record_sample(client: aioredis.Redis, keys: Keys, sample: Sample) -> None:
    """Prepend one sample and keep the newest :data:`SAMPLES_KEPT`."""
    pipe = client.pipeline(transaction=True)
    pipe.lpush(samples_key(keys), msgspec.json.encode(sample))
    pipe.ltrim(samples_key(keys), 0, SAMPLES_KEPT - 1)
    await pipe.execute()


async def read_samples(client: aioredis.Redis, keys: Keys, within: float = 3600.0) -> list[Sample]:
    """The samples of the last ``within`` seconds, oldest first (undecodable entries skipped)."""
    raw = await client.lrange(samples_key(keys), 0, SAMPLES_KEPT - 1)
    cutoff = time.time() - within
    samples = []
    for item in raw:
        try:
            sample = msgspec.json.decode(item, type=Sample)
        except msgspec.DecodeError:
            continue
        if sample.at >= cutoff:
            samples.append(sample)
    return sorted(samples, key=lambda s: s.at)


def ingest_rate(at: float, ingest: IngestCounts, previous: Sample | None,
                stored_last_minute: float | None) -> tuple[float | None, str]:
    """Events accepted per minute and where the figure came from (see :attr:`Sample.ingest_per_minute`)."""
    if ingest.error is None and ingest.accepted_total is not None:
        if previous is None or previous.ingest_accepted is None or previous.ingest_accepted > ingest.accepted_total:
            return None, "metrics"  # the first reading, or ingest restarted: no increase to measure yet
        elapsed = at - previous.at
        if not 0 < elapsed <= 3 * SAMPLE_INTERVAL:
            return None, "metrics"
        return round((ingest.accepted_total - previous.ingest_accepted) * 60.0 / elapsed, 2), "metrics"
    if stored_last_minute is not None:
        return stored_last_minute, "database"
    return None, "none"


def sample_from(*, at: float, procs: Processes, pg: Postgres, info: RedisInfo, queued: Queues, ingest: IngestCounts,
                lag: RollupLag, websocket_connections: int | None, previous: Sample | None,
                stored_last_minute: float | None) -> Sample:
    """One sample from the parts collected at ``at`` (a part with an error leaves its figures ``None``)."""
    all_procs = [proc for watcher in procs.watchers for proc in watcher.processes]
    rate, source = ingest_rate(at, ingest, previous, stored_last_minute)
    return Sample(
        at=at,
        ingest_accepted=ingest.accepted_total if ingest.error is None else None,
        ingest_per_minute=rate,
        ingest_source=source,
        queue_ready=sum(q.ready for q in queued.queues) if queued.error is None else None,
        dead_letters=sum(q.dead_letters for q in queued.queues) if queued.error is None else None,
        redis_memory_bytes=info.used_memory_bytes if info.error is None else None,
        redis_ops_per_second=info.ops_per_second if info.error is None else None,
        pg_connections=sum(pg.connections.values()) if pg.error is None else None,
        websocket_connections=websocket_connections,
        rollup_lag_seconds=lag.worst_seconds if lag.error is None else None,
        cpu_percent=(round(sum(p.cpu_percent or 0.0 for p in all_procs), 1)
                     if procs.error is None and all_procs else None),
        memory_bytes=sum(p.memory_bytes or 0 for p in all_procs) if procs.error is None and all_procs else None,
        pids={w.name: [p.pid for p in w.processes] for w in procs.watchers},
    )


def finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


# -- all parts at once -----------------------------------------------------------------------------------------

class Snapshot(msgspec.Struct, kw_only=True):
    processes: Processes
    postgres: Postgres
    redis: RedisInfo
    queues: Queues
    ingest: IngestCounts
    rollups: RollupLag


async def snapshot(settings: Settings, engine: AsyncEngine, client: aioredis.Redis, keys: Keys) -> Snapshot:
    """Every part at once, each within the services' HTTP timeout and independent of the others."""
    timeout = settings.http_client.timeout
    procs, pg, info, queued, ingest, lag = await asyncio.gather(
        guarded(processes(settings.paths.run_dir, timeout), lambda e: Processes(error=e), timeout),
        guarded(postgres(engine), lambda e: Postgres(error=e), timeout),
        guarded(redis_info(client), lambda e: RedisInfo(error=e), timeout),
        guarded(queues(client, keys), lambda e: Queues(error=e), timeout),
        guarded(ingest_counts(settings.server.service_urls["ingest"], timeout), lambda e: IngestCounts(error=e),
                timeout),
        guarded(rollup_lag(engine), lambda e: RollupLag(error=e), timeout),
    )
    return Snapshot(processes=procs, postgres=pg, redis=info, queues=queued, ingest=ingest, rollups=lag)


async def take_sample(settings: Settings, websocket_connections: int | None = None) -> Sample:
    """Collect every part, store one sample (the ``sample_monitoring`` job, once a minute) and return it.

    Raises:
        redis.exceptions.RedisError: Redis is away (the sample has nowhere to go).
    """
    engine = make_async_engine(settings.database, application_name="beacon-monitoring")
    client = make_async_redis(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    try:
        at = time.time()
        parts = await snapshot(settings, engine, client, keys)
        stored: float | None = None
        if parts.ingest.error is not None:
            with contextlib.suppress(Exception):
                stored = await asyncio.wait_for(events_last_minute(engine), settings.http_client.timeout)
        recent = await read_samples(client, keys, within=3 * SAMPLE_INTERVAL)
        previous = recent[-1] if recent else None
        sample = sample_from(at=at, procs=parts.processes, pg=parts.postgres, info=parts.redis, queued=parts.queues,
                             ingest=parts.ingest, lag=parts.rollups, websocket_connections=websocket_connections,
                             previous=previous, stored_last_minute=stored)
        await record_sample(client, keys, sample)
        return sample
    finally:
        await client.aclose()
        await engine.dispose()
