"""Sites, who may see them (memberships, invitations, share links), goals."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.contracts import EventsReceived
from app.core.errors import AppError, ClientError, Conflict, Forbidden, NotFound
from app.core.inputs import existing_id
from app.core.models import Goal, Invitation, Membership, Site, SiteExclusion, User
from app.core.resources import Resources
from app.core.timezones import site_timezones
from app.core.tokens import token_hash
from app.domain.access.services import SiteAccess
from app.domain.accounts.services import normalize_email, pending_invitation
from app.realtime.publish import WebSocketService, site_channel

logger = logging.getLogger("beacon.sites")

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
INVITATION_TTL = timedelta(days=7)


def normalize_domain(domain: str) -> str:
    """``https://www.Example.com/`` → ``example.com``; rejects what is not a host name."""
    value = domain.strip().lower()
    value = re.sub(r"^[a-z]+://", "", value).split("/", 1)[0].removeprefix("www.")
    if not DOMAIN_RE.match(value):
        raise ClientError(f"domain: {domain!r} is not a valid domain name")
    return value


def check_timezone(tz: str) -> str:
    if tz not in site_timezones():
        raise ClientError(f"timezone: unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)")
    try:
        ZoneInfo(tz)
    except ZoneInfoNotFoundError:
        raise ClientError(f"timezone: unknown time zone {tz!r}") from None
    return tz


async def create_site(session: AsyncSession, domain: str, timezone: str = "UTC", *,
                      owner_id: int | None = None) -> Site:
    """Add a site; ``owner_id`` becomes its owner (without one, every instance admin does)."""
    site = Site(domain=normalize_domain(domain), timezone=check_timezone(timezone))
    session.add(site)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"domain: a site for {site.domain} already exists") from None
    if owner_id is not None:
        session.add(Membership(site_id=site.id, user_id=owner_id, role="owner"))
    else:
        await session.execute(text(
            "INSERT INTO memberships (site_id, user_id, role) SELECT :site, id, 'owner' FROM users WHERE is_admin"),
            {"site": site.id})
    await session.flush()
    return site


async def get_site_by_domain(session: AsyncSession, domain: str) -> Site | None:
    return (await session.execute(select(Site).where(Site.domain == domain.strip().lower()))).scalar_one_or_none()


async def list_sites(session: AsyncSession, user_id: int | None = None) -> list[Site]:
    """Every site, or those ``user_id`` is a member of."""
    query = select(Site).order_by(Site.domain)
    if user_id is not None:
        query = query.join(Membership, Membership.site_id == Site.id).where(Membership.user_id == user_id)
    return list((await session.execute(query)).scalars())



async def update_site(session: AsyncSession, site: Site, domain: str, timezone: str) -> None:
    site.domain = normalize_domain(domain)
    site.timezone = check_timezone(timezone.strip())
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"domain: a site for {site.domain} already exists") from None


async def delete_site(session: AsyncSession, site: Site, confirmation: str) -> None:
    """Delete the site and everything stored for it (events, goals, members ...: ON DELETE CASCADE)."""
    if confirmation.strip().lower() != site.domain:
        raise ClientError(f"confirm: type the domain {site.domain} to confirm")
    await session.execute(delete(Site).where(Site.id == site.id))


async def create_share_link(session: AsyncSession, site: Site) -> str:
    """A new share token for the site (replacing any previous one); returned once, stored hashed."""
    token = secrets.token_urlsafe(24)
    site.share_token_hash = token_hash(token)
    await session.flush()
    return token


async def revoke_share_link(session: AsyncSession, site: Site) -> None:
    site.share_token_hash = None
    await session.flush()


async def site_by_share_token(session: AsyncSession, token: str) -> Site | None:
    if not token or len(token) > 200:
        return None
    return (await session.execute(select(Site).where(Site.share_token_hash == token_hash(token)))
            ).scalar_one_or_none()


# --- members and invitations -------------------------------------------------------------------------


async def list_members(session: AsyncSession, site_id: int) -> list[tuple[User, str]]:
    rows = await session.execute(select(User, Membership.role).join(Membership, Membership.user_id == User.id)
                                 .where(Membership.site_id == site_id).order_by(User.email))
    return [(user, role) for user, role in rows.tuples()]


async def create_invitation(session: AsyncSession, access: SiteAccess, email: str, role: str,
                            invited_by: int) -> str:
    """An invitation link token for ``email`` with ``role``; only owners may invite admins."""
    email = normalize_email(email)
    if role not in ("admin", "viewer"):
        raise ClientError("role: choose admin or viewer")
    if role == "admin" and access.role != "owner":
        raise Forbidden("role: only the owner may invite admins")
    token = secrets.token_urlsafe(24)
    session.add(Invitation(site_id=access.site.id, email=email, role=role, token_hash=token_hash(token),
                           invited_by=invited_by, expires_at=datetime.now(UTC) + INVITATION_TTL))
    await session.flush()
    return token


async def accept_invitation(session: AsyncSession, token: str, user: User) -> Site:
    found = await pending_invitation(session, token)
    if found is None:
        raise NotFound("this invitation does not exist, was used already or has expired")
    invitation, site = found
    if invitation.email != user.email:
        raise Forbidden(f"this invitation is for another e-mail address; sign in as {invitation.email}")
    existing = await session.get(Membership, (site.id, user.id))
    if existing is None:
        session.add(Membership(site_id=site.id, user_id=user.id, role=invitation.role))
    invitation.accepted_at = datetime.now(UTC)
    await session.flush()
    return site


async def remove_member(session: AsyncSession, access: SiteAccess, user_id: int) -> None:
    target = await session.get(Membership, (access.site.id, existing_id(user_id, "user")))
    if target is None:
        raise NotFound("user: not a member of this site")
    if target.role == "owner":
        raise Forbidden("user: the owner cannot be removed")
    if target.role == "admin" and access.role != "owner":
        raise Forbidden("user: only the owner may remove admins")
    await session.delete(target)


# --- goals ---------------------------------------------------------------------------------------------

EVENT_NAME_MAX = 120
PAGE_PATH_RE = re.compile(r"^/[^\s]{0,1999}$")


def check_goal(goal_type: str, event_name: str | None, page_path: str | None) -> tuple[str | None, str | None]:
    if goal_type == "event":
        name = (event_name or "").strip()
        if not name:
            raise ClientError("event_name: required for an event goal")
        if len(name) > EVENT_NAME_MAX:
            raise ClientError(f"event_name: at most {EVENT_NAME_MAX} characters")
        return name, None
    if goal_type == "page":
        path = (page_path or "").strip()
        if not PAGE_PATH_RE.match(path):
            raise ClientError("page_path: a path starting with / without spaces (use * as a wildcard)")
        return None, path
    raise ClientError("goal_type: must be event or page")


async def find_or_create_goal(session: AsyncSession, site: Site, goal_type: str, event_name: str | None,
                              page_path: str | None, display_name: str | None = None) -> Goal:
    """Like Plausible's ``PUT /api/v1/sites/goals``: an existing identical goal is returned unchanged."""
    event, path = check_goal(goal_type, event_name, page_path)
    query = select(Goal).where(Goal.site_id == site.id)
    query = query.where(Goal.event_name == event) if event else query.where(Goal.page_path == path)
    existing = (await session.execute(query)).scalar_one_or_none()
    if existing is not None:
        return existing
    name = (display_name or "").strip() or (event or f"Visit {path}")
    if len(name) > 120:
        raise ClientError("display_name: at most 120 characters")
    goal = Goal(site_id=site.id, event_name=event, page_path=path, display_name=name)
    session.add(goal)
    await session.flush()
    return goal


async def list_goals(session: AsyncSession, site_id: int) -> list[Goal]:
    return list((await session.execute(select(Goal).where(Goal.site_id == site_id).order_by(Goal.id))).scalars())


async def delete_goal(session: AsyncSession, site_id: int, goal_id: int) -> None:
    goal_id = existing_id(goal_id, "goal_id")
    result = await session.execute(delete(Goal).where(Goal.site_id == site_id, Goal.id == goal_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("goal_id: no such goal on this site")


def tracker_snippet(base_url: str, domain: str) -> str:
    return f'<script defer data-domain="{domain}" src="{base_url}/js/script.js"></script>'


async def revoke_live_access(resources: Resources, site_id: int, *, user_id: int | None = None,
                             share: bool = False, deleted: bool = False) -> None:
    """Tell the realtime processes that access changed, so open WebSockets lose it at once.

    Called after the change is committed; a Redis failure is logged, not raised: the change stands, and
    reconnecting clients are checked against the database anyway.
    """
    service = WebSocketService(resources.redis, resources.keys)
    try:
        if user_id is not None:
            await service.revoke_room(user_id, site_channel(site_id))
        if share or deleted:
            await service.close_share(site_id)
        if deleted:
            await service.close_room(site_channel(site_id))
    except Exception as exc:
        logger.warning("cannot tell realtime about revoked access", extra={"error": str(exc)})


async def list_sites_with_roles(session: AsyncSession, user_id: int) -> list[tuple[Site, str]]:
    """The user's sites with the user's role on each, by domain."""
    rows = await session.execute(select(Site, Membership.role).join(Membership, Membership.site_id == Site.id)
                                 .where(Membership.user_id == user_id).order_by(Site.domain))
    return [(site, role) for site, role in rows.tuples()]


async def has_events(resources: Resources, site_id: int) -> bool:
    """Whether any event of the site is stored (the first-event check of the setup page), from the analytics
    service, the only reader of events."""
    answer = await resources.services.json("analytics", "GET", f"/sites/{site_id}/received")
    return msgspec.convert(answer, EventsReceived).received


# --- visitor overviews for the sites list ---------------------------------------------------------------

SPARK_DAYS = 7
_OVERVIEW_CONCURRENCY = 8


@dataclass(frozen=True)
class VisitorOverview:
    days: list[int]
    """Visitors per local day, oldest first; the last is today."""

    @property
    def today(self) -> int:
        return self.days[-1]


async def visitor_overview(resources: Resources, site: Site, today: date) -> VisitorOverview:
    """Visitors per day of the last :data:`SPARK_DAYS` days, today included, from the analytics service."""
    first = today - timedelta(days=SPARK_DAYS - 1)
    answer = await resources.services.json("analytics", "POST", "/query", json={
        "site_id": site.domain, "metrics": ["visitors"], "date_range": [first.isoformat(), today.isoformat()],
        "dimensions": ["time:day"]})
    by_day = {str(row["dimensions"][0])[:10]: int(row["metrics"][0]) for row in answer.get("results", [])}
    return VisitorOverview([by_day.get((first + timedelta(days=n)).isoformat(), 0) for n in range(SPARK_DAYS)])


async def visitor_overviews(resources: Resources, sites: list[Site]) -> tuple[dict[int, VisitorOverview], str | None]:
    """Overviews of ``sites`` by site id (one analytics query each, a few at a time), and the first problem.

    A site whose query fails is left out, so the sites list still shows every site when analytics is down.
    """
    limit = asyncio.Semaphore(_OVERVIEW_CONCURRENCY)
    now = datetime.now(UTC)

    async def one(site: Site) -> VisitorOverview | str:
        async with limit:
            try:
                return await visitor_overview(resources, site, now.astimezone(ZoneInfo(site.timezone)).date())
            except AppError as exc:
                return exc.detail

    results = await asyncio.gather(*(one(site) for site in sites))
    overviews = {site.id: result for site, result in zip(sites, results, strict=True)
                 if isinstance(result, VisitorOverview)}
    problems = [result for result in results if isinstance(result, str)]
    if problems:
        logger.warning("visitor overviews unavailable", extra={"failed": len(problems), "error": problems[0]})
    return overviews, problems[0] if problems else None


# --- exclusions -----------------------------------------------------------------------------------------

EXCLUSION_MAX = 500
EXCLUSION_PATH_RE = re.compile(r"^/[^\s]{0,499}$")


def check_exclusion(kind: str, pattern: str) -> str:
    """The normalised pattern: an IP address or CIDR range (``ip``), or a path glob (``path``)."""
    value = pattern.strip()
    if kind == "ip":
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ClientError(f"pattern: {value!r} is not an IP address or range such as 203.0.113.0/24") from None
    if kind == "path":
        if not EXCLUSION_PATH_RE.match(value):
            raise ClientError("pattern: a path starting with / without spaces, at most 500 characters")
        return value
    raise ClientError("kind: must be ip or path")


async def list_exclusions(session: AsyncSession, site_id: int) -> list[SiteExclusion]:
    return list((await session.execute(select(SiteExclusion).where(SiteExclusion.site_id == site_id)
                                       .order_by(SiteExclusion.kind, SiteExclusion.pattern))).scalars())


async def add_exclusion(session: AsyncSession, site_id: int, kind: str, pattern: str) -> SiteExclusion:
    value = check_exclusion(kind, pattern)
    existing = (await session.execute(select(SiteExclusion).where(
        SiteExclusion.site_id == site_id, SiteExclusion.kind == kind, SiteExclusion.pattern == value))
    ).scalar_one_or_none()
    if existing is not None:
        raise Conflict(f"pattern: {value} is excluded already")
    rule = SiteExclusion(site_id=site_id, kind=kind, pattern=value)
    session.add(rule)
    await session.flush()
    return rule


async def delete_exclusion(session: AsyncSession, site_id: int, exclusion_id: int) -> None:
    exclusion_id = existing_id(exclusion_id, "exclusion_id")
    result = await session.execute(delete(SiteExclusion).where(SiteExclusion.site_id == site_id,
                                                               SiteExclusion.id == exclusion_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("exclusion_id: no such exclusion on this site")
