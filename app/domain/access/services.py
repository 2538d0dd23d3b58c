"""A user's access to a site: the membership's role, and whether it allows what a request needs.

Roles rank owner > admin > viewer (``app.core.models.ROLES``); a role allows everything a weaker one does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, NotFound
from app.core.models import ROLES, Membership, Site

RANK = {role: len(ROLES) - index for index, role in enumerate(ROLES)}
"""owner 3, admin 2, viewer 1: a role grants everything a weaker one does."""


@dataclass(frozen=True)
class SiteAccess:
    site: Site
    role: str

    def allows(self, needed: str) -> bool:
        return RANK[self.role] >= RANK[needed]


async def site_access(session: AsyncSession, user_id: int, domain: str, needed: str = "viewer") -> SiteAccess:
    """The user's access to the site, if at least ``needed``.

    A site that does not exist and one the user is not a member of give the same ``NotFound``, so nobody
    learns which domains exist; a member without the role gets ``Forbidden``.
    """
    row = (await session.execute(
        select(Site, Membership.role).join(Membership, Membership.site_id == Site.id)
        .where(Site.domain == domain.strip().lower(), Membership.user_id == user_id))).first()
    if row is None:
        raise NotFound(f"no site {domain}")
    access = SiteAccess(row[0], row[1])
    if not access.allows(needed):
        raise Forbidden(f"your role on {access.site.domain} ({access.role}) does not allow this")
    return access
