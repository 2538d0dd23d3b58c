"""``beacon check``: every component of an installation, as one table."""

from __future__ import annotations

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


async def _ok() -> str | None:
    return None
