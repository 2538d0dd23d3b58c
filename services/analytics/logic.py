"""Queries over events, in the site's time zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, NotFound
from app.core.inputs import check_date
from app.core.periods import local_day_bounds

MAX_RANGE_DAYS = 3660


def check_range(date_from: date, date_to: date) -> None:
    check_date(date_from, "date_from")
    check_date(date_to, "date_to")
    if date_to < date_from:
        raise ClientError("date_to must not be before date_from")
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise ClientError(f"a date range spans at most {MAX_RANGE_DAYS} days")


def bounds(date_from: date, date_to: date, tz: str) -> tuple[datetime, datetime]:
    """The half-open UTC interval covering whole local days ``date_from``..``date_to``."""
    return local_day_bounds(date_from, date_to, tz)


async def site_timezone(session: AsyncSession, site_id: int) -> str:
    tz = (await session.execute(text("SELECT timezone FROM sites WHERE id = :id"), {"id": site_id})).scalar()
    if tz is None:
        raise NotFound(f"no site with id {site_id}")
    return str(tz)


async def has_events(session: AsyncSession, site_id: int) -> bool:
    """Whether any event of the site is stored (one index probe)."""
    found = await session.execute(text("SELECT EXISTS (SELECT 1 FROM events WHERE site_id = :site)"),
                                  {"site": site_id})
    return bool(found.scalar_one())


async def pageviews(session: AsyncSession, site_id: int, start: datetime, end: datetime) -> int:
    count = await session.execute(
        text("SELECT count(*) FROM events WHERE site_id = :site AND name = 'pageview' "
             "AND timestamp >= :start AND timestamp < :end"),
        {"site": site_id, "start": start, "end": end},
    )
    return int(count.scalar_one())


async def daily_pageviews(
    session: AsyncSession, site_id: int, date_from: date, date_to: date, tz: str
) -> list[tuple[date, int]]:
    """Pageviews per local day, every day of the range present (zero where none)."""
    start, end = bounds(date_from, date_to, tz)
    rows = await session.execute(
        text(
            "SELECT d::date, count(e.id) FROM generate_series(CAST(:from AS date), CAST(:to AS date), "
            "interval '1 day') AS d LEFT JOIN events e ON e.site_id = :site AND e.name = 'pageview' "
            "AND e.timestamp >= :start AND e.timestamp < :end "
            "AND (e.timestamp AT TIME ZONE :tz)::date = d::date GROUP BY d ORDER BY d"
        ),
        {"from": date_from, "to": date_to, "site": site_id, "start": start, "end": end, "tz": tz},
    )
    return [(day, int(n)) for day, n in rows]


async def site_for_query(session: AsyncSession, domain: str) -> tuple[int, str, date]:
    """Id, time zone and first stats day of the site with ``domain``: the first day of ``all`` (Plausible's
    ``stats_start_date``), the earliest of the local days of the site's creation and of its first event and the
    first day of its earliest completed import (imported history begins before the site did)."""
    site_id, tz, native = await _site_and_native_start(session, domain)
    imported = (await session.execute(text(
        "SELECT min(start_date) FROM site_imports WHERE site_id = :site AND status = 'completed'"),
        {"site": site_id})).scalar()
    return site_id, tz, min(native, imported) if isinstance(imported, date) else native


async def _site_and_native_start(session: AsyncSession, domain: str) -> tuple[int, str, date]:
    """Id, time zone and the local day of the earlier of the site's creation and its first event."""
    row = (await session.execute(
        text("SELECT id, timezone, created_at FROM sites WHERE domain = :domain"), {"domain": domain}
    )).first()
    if row is None:
        raise NotFound(f"site_id: no site {domain!r}")
    site_id, tz, created_at = row
    first = (await session.execute(
        text("SELECT min(timestamp) FROM events WHERE site_id = :site"), {"site": site_id})).scalar()
    start = min(created_at, first) if first is not None else created_at
    return int(site_id), str(tz), start.astimezone(ZoneInfo(str(tz))).date()


async def property_keys(session: AsyncSession, site_id: int, start: datetime, end: datetime, limit: int) -> list[str]:
    """Custom property keys of the site's events in ``[start, end)``, sorted, at most ``limit``."""
    rows = await session.execute(text(
        "SELECT DISTINCT key FROM events, jsonb_object_keys(props) AS key "
        "WHERE site_id = :site AND timestamp >= :start AND timestamp < :end ORDER BY key LIMIT :limit"),
        {"site": site_id, "start": start, "end": end, "limit": limit})
    return [str(row[0]) for row in rows]


async def first_day(session: AsyncSession, site_id: int, tz: str) -> date | None:
    """The local day of the site's first event (None without events)."""
    first = (await session.execute(
        text("SELECT min(timestamp) FROM events WHERE site_id = :site"), {"site": site_id})).scalar()
    return None if first is None else first.astimezone(ZoneInfo(tz)).date()


async def site_for_export(session: AsyncSession, site_id: int) -> tuple[str, str, date]:
    """Domain, time zone and first day of the site ``site_id``'s own stats (imported ones are not exported);
    NotFound without it."""
    domain = (await session.execute(text("SELECT domain FROM sites WHERE id = :id"), {"id": site_id})).scalar()
    if domain is None:
        raise NotFound(f"no site with id {site_id}")
    _, tz, start = await _site_and_native_start(session, str(domain))
    return str(domain), tz, start


async def engagement_cutoff(session: AsyncSession, site_id: int, tz: str) -> datetime | None:
    """Local midnight of the site's first engagement event (Plausible's ``legacy_time_on_page_cutoff``): before
    it, time on page is computed with the legacy definition; None while the site has none."""
    cutoff = await session.execute(text(
        "SELECT date_trunc('day', min(timestamp) AT TIME ZONE :tz) AT TIME ZONE :tz FROM engagements "
        "WHERE site_id = :site"), {"site": site_id, "tz": tz})
    found = cutoff.scalar()
    return found if isinstance(found, datetime) else None


async def goal_names(session: AsyncSession, site_id: int) -> set[str]:
    """The display names of the site's goals (what ``event:goal`` filters name)."""
    rows = await session.execute(text("SELECT display_name FROM goals WHERE site_id = :site"), {"site": site_id})
    return {str(name) for name in rows.scalars()}
