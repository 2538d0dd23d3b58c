"""Bearer API-key authentication, reusable by every API controller (Sites API, Stats API).

Use it as a Litestar dependency::

    @get("/api/v1/stats/aggregate", dependencies={"principal": api_key_dependency("stats:read")})
    async def aggregate(principal: ApiPrincipal) -> ...

and check the site with :func:`principal_site` (which answers 404 for sites the key's user cannot see).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from app.core.models import ApiKey, Site, User
from app.core.ratelimit import count_in_window
from app.core.resources import Resources
from app.domain.access.services import SiteAccess, site_access
from app.domain.apikeys.services import verify_api_key

logger = logging.getLogger("beacon.apikeys")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="beacon"'}


@dataclass(frozen=True)
class ApiPrincipal:
    """Who an API request acts for: the key and its user."""

    key: ApiKey
    user: User

    def has_scope(self, scope: str) -> bool:
        return scope in self.key.scopes


async def api_principal(request: Request[Any, Any, Any], resources: Resources, scope: str) -> ApiPrincipal:
    """The principal of the request's ``Authorization: Bearer`` key, if the key has ``scope``."""
    header = request.headers.get("authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise Unauthorized("Missing API key. Send it as 'Authorization: Bearer <key>'.", headers=CHALLENGE)
    async with resources.sessions.begin() as session:
        found = await verify_api_key(session, value.strip())
    if found is None:
        raise Unauthorized("Invalid API key: unknown or revoked.", headers=CHALLENGE)
    principal = ApiPrincipal(*found)
    if not principal.has_scope(scope):
        raise Forbidden(f"This API key lacks the scope {scope}.")
    limit = resources.settings.accounts.api_key_hourly_limit
    try:
        verdict = await count_in_window(resources.redis, f"{resources.keys.prefix}apikey:hour:{principal.key.id}",
                                        limit, 3600)
    except (RedisError, OSError) as exc:  # as ingest does: a Redis outage lifts the limit, never the API
        logger.warning("API key limit not checked: redis unavailable", extra={"error": str(exc)})
        return principal
    if not verdict.allowed:
        raise TooManyRequests(f"Too many API requests. This API key is limited to {limit} requests per hour; "
                              f"try again in {verdict.retry_after} s.",
                              headers={"Retry-After": str(verdict.retry_after)})
    return principal


def api_key_dependency(scope: str) -> Provide:
    """A ``Provide`` that resolves to the :class:`ApiPrincipal` of a key with ``scope``.

    Needs the ``resources`` dependency (:data:`app.domain.deps.DEPENDENCIES`) on the same handler.
    """

    async def provide(request: Request[Any, Any, Any], resources: NamedDependency[Resources]) -> ApiPrincipal:
        return await api_principal(request, resources, scope)

    return Provide(provide)


async def checked_site(session: AsyncSession, principal: ApiPrincipal, domain: str,
                       needed: str = "viewer") -> SiteAccess:
    """The key's user's access to the site ``domain`` if it allows ``needed``.

    Raises ``NotFound`` ("Site could not be found") both for a site that does not exist and for one the user
    lacks the role on, so a key never learns which domains exist.
    """
    try:
        return await site_access(session, principal.user.id, domain, needed)
    except (Forbidden, NotFound):
        raise NotFound("Site could not be found") from None


def site_access_dependency(needed: str) -> Provide:
    """A ``Provide`` resolving to the :class:`SiteAccess` of the path's ``site_id`` for the request's key.

    Needs the ``principal`` and ``db_session`` dependencies (:mod:`app.domain.deps`) on the same handler.
    """

    async def provide(principal: NamedDependency[ApiPrincipal], db_session: NamedDependency[AsyncSession],
                      site_id: FromPath[str]) -> SiteAccess:
        return await checked_site(db_session, principal, site_id, needed)

    return Provide(provide)


async def principal_site(resources: Resources, principal: ApiPrincipal, domain: str, needed: str = "viewer") -> Site:
    """The site ``domain`` if the key's user has ``needed`` on it; 404 otherwise (existence is not revealed).

    Its database session is closed before it returns: the callers then ask another service.
    """
    async with resources.sessions() as session:
        access = await checked_site(session, principal, domain, needed)
    return access.site


ScopeCheck = Callable[[Request[Any, Any, Any]], Awaitable[ApiPrincipal]]
