"""``beacon check``: every component of an installation, as one table."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from app.core.health import Check, run_checks, service_check
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


async def check_installation(settings: Settings) -> list[tuple[str, str]]:
    resources = Resources.open(settings, "check")
    try:
        checks = {"configuration": _ok, **component_checks(resources), "schema": _schema_check(resources),
                  "api": service_check(resources, "api", "/api/health"),
                  "realtime": service_check(resources, "realtime")}
        results = await run_checks(checks, timeout=settings.http_client.timeout)
    finally:
        await resources.close()
    return list(results.items())


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
