"""Sites: the websites whose events Beacon counts."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, Conflict
from app.core.models import Site

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def normalize_domain(domain: str) -> str:
    """``https://www.Example.com/`` → ``example.com``; rejects what is not a host name."""
    value = domain.strip().lower()
    value = re.sub(r"^[a-z]+://", "", value).split("/", 1)[0].removeprefix("www.")
    if not DOMAIN_RE.match(value):
        raise ClientError(f"domain: {domain!r} is not a valid domain name")
    return value


def check_timezone(tz: str) -> str:
    if tz not in available_timezones() and tz != "UTC":
        raise ClientError(f"timezone: unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)")
    try:
        ZoneInfo(tz)
    except ZoneInfoNotFoundError:
        raise ClientError(f"timezone: unknown time zone {tz!r}") from None
    return tz


async def create_site(session: AsyncSession, domain: str, timezone: str = "UTC") -> Site:
    site = Site(domain=normalize_domain(domain), timezone=check_timezone(timezone))
    session.add(site)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"domain: a site for {site.domain} already exists") from None
    return site


async def get_site_by_domain(session: AsyncSession, domain: str) -> Site | None:
    return (await session.execute(select(Site).where(Site.domain == domain.strip().lower()))).scalar_one_or_none()


async def list_sites(session: AsyncSession) -> list[Site]:
    return list((await session.execute(select(Site).order_by(Site.domain))).scalars())
