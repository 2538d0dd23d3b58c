"""Health checks shared by every process: each check returns ``None`` when fine or a one-line problem."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar import Request, Response, get

from app.core.db import ping
from app.core.resources import Resources

Check = Callable[[], Awaitable[str | None]]


async def _guarded(check: Check, timeout: float) -> str | None:
    try:
        return await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


async def run_checks(checks: Mapping[str, Check], timeout: float = 3.0) -> dict[str, str]:
    """Run checks concurrently; map each name to ``ok`` or its problem."""
    names = list(checks)
    results = await asyncio.gather(*(_guarded(checks[name], timeout) for name in names))
    return {name: problem or "ok" for name, problem in zip(names, results, strict=True)}


def database_check(resources: Resources) -> Check:
    async def check() -> str | None:
        await ping(resources.engine)
        return None

    return check


def redis_check(resources: Resources) -> Check:
    async def check() -> str | None:
        await resources.redis.ping()
        return None

    return check


def heartbeat_check(resources: Resources, role: str) -> Check:
    """Fails when the last heartbeat ``role`` wrote to Redis is missing or too old."""

    async def check() -> str | None:
        raw = await resources.redis.get(resources.keys.heartbeat(role))
        if raw is None:
            return "no heartbeat yet"
        age = time.time() - float(raw)
        if age > resources.settings.workers.heartbeat_max_age:
            return f"last heartbeat {age:.0f} s ago"
        return None

    return check


def service_check(resources: Resources, service: str, path: str = "/health") -> Check:
    async def check() -> str | None:
        response = await resources.services.request(service, "GET", path)
        if response.status_code != 200:
            failed = {k: v for k, v in response.json().get("checks", {}).items() if v != "ok"}
            return f"answered {response.status_code}: {failed}"
        return None

    return check


def health_body(results: Mapping[str, str], **extra: Any) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body of a ``/health`` answer."""
    healthy = all(value == "ok" for value in results.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "fail", "checks": dict(results), **extra}
    if not healthy:
        body["failed"] = sorted(name for name, value in results.items() if value != "ok")
    return 200 if healthy else 503, body


def health_response(results: Mapping[str, str], **extra: Any) -> Response[dict[str, Any]]:
    status, body = health_body(results, **extra)
    return Response(body, status_code=status, headers={"Cache-Control": "no-store"})


@get("/health", include_in_schema=False)
async def service_health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """``GET /health`` of an internal service: its own PostgreSQL and Redis connections."""
    resources: Resources = request.app.state.resources
    results = await run_checks({"database": database_check(resources), "redis": redis_check(resources)})
    return health_response(results)
