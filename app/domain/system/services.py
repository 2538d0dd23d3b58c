"""Instance health: every component the api depends on."""

from __future__ import annotations

from app.core.health import Check, database_check, heartbeat_check, redis_check, run_checks, service_check
from app.core.resources import Resources
from app.core.settings import SERVICE_NAMES


def component_checks(resources: Resources) -> dict[str, Check]:
    checks = {"database": database_check(resources), "redis": redis_check(resources)}
    checks |= {name: service_check(resources, name) for name in SERVICE_NAMES}
    checks |= {role: heartbeat_check(resources, role) for role in ("worker", "scheduler")}
    return checks


async def instance_health(resources: Resources) -> dict[str, str]:
    return await run_checks(component_checks(resources), timeout=resources.settings.http_client.timeout)
