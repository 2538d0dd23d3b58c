"""``beacon check``: every component of an installation, as one table."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import text

from app.core.cluster import cluster_problem, patroni_cluster
from app.core.health import Check, run_checks, service_check
from app.core.redis import sentinel_master_address
from app.core.resources import Resources
from app.core.settings import Settings
from app.domain.system.services import component_checks
from app.migrate import head_revision


def _schema_check(resources: Resources) -> Check:
    async def check() -> str | None:
        async with resources.engine.connect() as conn:
            exists = (await conn.execute(text("SELECT to_regclass('public.alembic_version')"))).scalar()
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() \
                if exists else None
        head = head_revision()
        if current != head:
            return f"schema at {current or 'nothing'}, code expects {head}: run `beacon migrate`"
        return None

    return check


def cluster_lines(state: dict[str, Any], redis_master: tuple[str, int] | None) -> list[str]:
    """One line per PostgreSQL member (role, state, address, lag in bytes) and Sentinel's master."""
    lines = []
    for member in sorted(state.get("members", []), key=lambda m: (m.get("role") != "leader", m.get("name", ""))):
        lag = member.get("lag")
        lag_text = "" if member.get("role") == "leader" else f", lag {lag} B" if isinstance(lag, int) else \
            f", lag {lag or 'unknown'}"
        lines.append(f"postgresql {member.get('role', '?'):<12} {member.get('name', '?'):<12} "
                     f"{member.get('host', '?')}:{member.get('port', '?')} {member.get('state', '?')}{lag_text}")
    if redis_master is not None:
        lines.append(f"redis      master       (Sentinel)   {redis_master[0]}:{redis_master[1]}")
    return lines


async def cluster_view(settings: Settings) -> tuple[dict[str, Check], list[str]]:
    """The checks of a multi-host installation (Patroni cluster, Sentinel's master) and its description."""
    checks: dict[str, Check] = {}
    lines: list[str] = []
    if settings.database.patroni_urls:
        problem: str | None
        try:
            state: dict[str, Any] | None = await patroni_cluster(settings)
        except RuntimeError as exc:
            state, problem = None, str(exc)
        else:
            assert state is not None
            problem = cluster_problem(state)

        async def postgres_cluster() -> str | None:
            return problem

        checks["postgresql cluster"] = postgres_cluster
        if state is not None:
            lines += cluster_lines(state, None)
    if settings.redis.sentinels:
        try:
            master = await asyncio.to_thread(sentinel_master_address, settings.redis)
            sentinel_problem = None
        except Exception as exc:
            master, sentinel_problem = None, f"{type(exc).__name__}: {exc}".splitlines()[0]

        async def redis_sentinel() -> str | None:
            return sentinel_problem

        checks["redis sentinel"] = redis_sentinel
        lines += cluster_lines({}, master)
    return checks, lines


async def check_installation_and_cluster(settings: Settings) -> tuple[list[tuple[str, str]], list[str]]:
    """``beacon check``'s rows (name, ``ok`` or the problem) and, on several hosts, the cluster's lines."""
    resources = Resources.open(settings, "check")
    try:
        cluster_checks, lines = await cluster_view(settings)
        checks = {"configuration": _ok, **component_checks(resources), "schema": _schema_check(resources),
                  "api": service_check(resources, "api", "/api/health"),
                  "realtime": service_check(resources, "realtime"), **cluster_checks}
        results = await run_checks(checks, timeout=settings.http_client.timeout)
    finally:
        await resources.close()
    return list(results.items()), lines


def metrics_endpoints(settings: Settings) -> dict[str, str]:
    """Every process's Prometheus endpoint by watcher name (docs/operations.md, "Metrics")."""
    urls = {name: f"{settings.server.service_urls[name]}/metrics" for name in settings.server.ports}
    observability = settings.observability
    urls["worker"] = f"http://127.0.0.1:{observability.worker_metrics_port}/metrics"
    urls["scheduler"] = f"http://127.0.0.1:{observability.scheduler_metrics_port}/metrics"
    return urls


async def check_metrics(settings: Settings) -> list[tuple[str, str]]:
    """``beacon check --metrics``: ``(watcher and URL, "ok" or why not)`` for every metrics endpoint."""

    async def probe(client: httpx.AsyncClient, url: str) -> str:
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__})"
        if response.status_code != 200:
            return f"answered {response.status_code}"
        if "# TYPE " not in response.text:
            return "answered, but not in Prometheus's text format"
        return "ok"

    endpoints = metrics_endpoints(settings)
    async with httpx.AsyncClient(timeout=settings.http_client.timeout) as client:
        results = await asyncio.gather(*(probe(client, url) for url in endpoints.values()))
    return [(f"{name} {url}", result) for (name, url), result in zip(endpoints.items(), results, strict=True)]


async def _ok() -> str | None:
    return None
