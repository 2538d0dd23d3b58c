"""Providers of the site pages that another service answers (webhooks, alerts, reports, imports, exports): the
signed-in user, the site named in the path (checked for their role) and the shared service client.

A controller lists ``{**USER_DEPENDENCIES, **SITE_PAGE_DEPENDENCIES}`` (the first from
:mod:`app.domain.accounts.deps`, which provides ``user``); its handlers take ``managed: SitePage`` (owner or admin) or
``member: SitePage`` (any role). As :func:`~app.domain.access.services.site_access` answers: a site the user is
no member of is "not found", as one that does not exist; a member without the role is forbidden.
"""

from __future__ import annotations

from typing import NamedTuple

from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from app.core.http import ServiceClient
from app.core.models import Site, User
from app.core.resources import Resources
from app.domain.access.services import site_access


class SitePage(NamedTuple):
    """The signed-in user, a site they hold a role on, and the client of the other services."""

    user: User
    site: Site
    services: ServiceClient


async def site_page(resources: Resources, user: User, domain: str, role: str) -> SitePage:
    """``domain`` for ``user`` with at least ``role`` (``NotFound`` or ``Forbidden`` otherwise).

    The database session is closed before it returns, so none is held while another service answers.
    """
    async with resources.sessions() as session:
        access = await site_access(session, user.id, domain, role)
    return SitePage(user, access.site, resources.services)


async def provide_managed_site(user: NamedDependency[User], resources: NamedDependency[Resources],
                               domain: FromPath[str]) -> SitePage:
    """``managed``: the path's site if the signed-in user is its owner or admin."""
    return await site_page(resources, user, domain, "admin")


async def provide_member_site(user: NamedDependency[User], resources: NamedDependency[Resources],
                              domain: FromPath[str]) -> SitePage:
    """``member``: the path's site if the signed-in user has any role on it."""
    return await site_page(resources, user, domain, "viewer")


SITE_PAGE_DEPENDENCIES = {"managed": Provide(provide_managed_site), "member": Provide(provide_member_site)}
"""The two site providers above; they need ``user`` and ``resources`` (``USER_DEPENDENCIES``) beside them."""
