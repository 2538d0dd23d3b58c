"""Site pages: create, settings (domain, time zone, goals, share link, members, annotations), delete."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, NamedTuple

import msgspec
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.models import User
from app.core.resources import Resources
from app.domain.accounts.deps import current_user, require_user
from app.domain.annotations.services import create_annotation, delete_annotation, list_annotations
from app.domain.sites import services
from app.domain.sites.services import SiteAccess, site_access

Form = Body(media_type=RequestEncodingType.URL_ENCODED)



class SiteWork(NamedTuple):
    user: User
    access: SiteAccess
    session: AsyncSession
    resources: Resources


@contextlib.asynccontextmanager
async def site_transaction(request: Request[Any, Any, Any], domain: str, role: str) -> AsyncIterator[SiteWork]:
    """A transaction on ``domain`` for the signed-in user, who must have at least ``role`` on it (404 otherwise,
    as for a site that does not exist); it commits when the block succeeds."""
    user = await require_user(request)
    resources: Resources = request.app.state.resources
    async with resources.sessions.begin() as session:
        yield SiteWork(user, await site_access(session, user.id, domain, role), session, resources)

class SiteForm(msgspec.Struct):
    domain: FromPath[str] = ""
    timezone: str = "UTC"


class DeleteForm(msgspec.Struct):
    confirm: str = ""


class GoalForm(msgspec.Struct):
    goal_type: str = ""
    event_name: str = ""
    page_path: str = ""
    display_name: str = ""


class InvitationForm(msgspec.Struct):
    email: str = ""
    role: str = "viewer"


class AnnotationForm(msgspec.Struct):
    date: str = ""
    body: str = ""


async def settings_context(request: Request[Any, Any, Any], session: AsyncSession, user: User,
                           access: SiteAccess, **extra: Any) -> dict[str, Any]:
    resources: Resources = request.app.state.resources
    site = access.site
    return {
        "user": user, "site": site, "role": access.role, "can_own": access.allows("owner"),
        "snippet": services.tracker_snippet(resources.settings.server.base_url, site.domain),
        "goals": await services.list_goals(session, site.id),
        "members": await services.list_members(session, site.id),
        "annotations": await list_annotations(session, site.id),
        "shared": site.share_token_hash is not None,
        "base_url": resources.settings.server.base_url,
        "share_url": None, "invitation_url": None, "notice": None,
        **extra,
    }


class SiteController(Controller):
    include_in_schema = False

    async def _settings(self, request: Request[Any, Any, Any], domain: FromPath[str], *, status: int = 200,
                        **extra: Any) -> Template:
        user = await require_user(request)
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "admin")
            context = await settings_context(request, session, user, access, **extra)
        return Template("site_settings.html", status_code=status, context=context)

    @get("/sites/new")
    async def new_site(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        user = await current_user(request)
        if user is None:
            return Redirect("/login?next=/sites/new")
        return Template("site_new.html", context={"user": user, "domain": "", "timezone": "UTC"})

    @post("/sites", status_code=303)
    async def create(self, request: Request[Any, Any, Any], data: Annotated[SiteForm, Form]) -> Redirect:
        user = await require_user(request)
        resources: Resources = request.app.state.resources
        async with resources.sessions.begin() as session:
            site = await services.create_site(session, data.domain, data.timezone.strip(), owner_id=user.id)
        return Redirect(f"/sites/{site.domain}/settings", status_code=303)

    @get("/sites/{domain:str}/settings")
    async def settings(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template | Redirect:
        if await current_user(request) is None:
            return Redirect(f"/login?next=/sites/{domain}/settings")
        return await self._settings(request, domain)

    @post("/sites/{domain:str}/settings", status_code=303)
    async def update(self, request: Request[Any, Any, Any], domain: FromPath[str],
                     data: Annotated[SiteForm, Form]) -> Redirect:
        async with site_transaction(request, domain, "admin") as work:
            await services.update_site(work.session, work.access.site, data.domain, data.timezone)
            new_domain = work.access.site.domain
        return Redirect(f"/sites/{new_domain}/settings", status_code=303)

    @get("/sites/{domain:str}/delete")
    async def confirm_delete(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template | Redirect:
        user = await current_user(request)
        if user is None:
            return Redirect(f"/login?next=/sites/{domain}/delete")
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "owner")
        return Template("site_delete.html", context={"user": user, "site": access.site})

    @post("/sites/{domain:str}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], domain: FromPath[str],
                     data: Annotated[DeleteForm, Form]) -> Redirect:
        async with site_transaction(request, domain, "owner") as work:
            site_id = work.access.site.id
            await services.delete_site(work.session, work.access.site, data.confirm)
        await services.revoke_live_access(work.resources, site_id, deleted=True)
        return Redirect("/", status_code=303)

    @post("/sites/{domain:str}/goals", status_code=303)
    async def add_goal(self, request: Request[Any, Any, Any], domain: FromPath[str],
                       data: Annotated[GoalForm, Form]) -> Redirect:
        async with site_transaction(request, domain, "admin") as work:
            await services.find_or_create_goal(work.session, work.access.site, data.goal_type, data.event_name,
                                               data.page_path, data.display_name)
        return Redirect(f"/sites/{domain}/settings#goals", status_code=303)

    @post("/sites/{domain:str}/goals/{goal_id:int}/delete", status_code=303)
    async def remove_goal(self, request: Request[Any, Any, Any],
                                domain: FromPath[str], goal_id: FromPath[int]) -> Redirect:
        async with site_transaction(request, domain, "admin") as work:
            await services.delete_goal(work.session, work.access.site.id, goal_id)
        return Redirect(f"/sites/{domain}/settings#goals", status_code=303)

    @post("/sites/{domain:str}/share", status_code=201)
    async def share(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template:
        async with site_transaction(request, domain, "admin") as work:
            site_id = work.access.site.id
            token = await services.create_share_link(work.session, work.access.site)
        await services.revoke_live_access(work.resources, site_id, share=True)  # the previous link, if any
        return await self._settings(request, domain, status=201,
                                    share_url=f"{work.resources.settings.server.base_url}/share/{token}")

    @post("/sites/{domain:str}/share/revoke", status_code=303)
    async def unshare(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Redirect:
        async with site_transaction(request, domain, "admin") as work:
            site_id = work.access.site.id
            await services.revoke_share_link(work.session, work.access.site)
        await services.revoke_live_access(work.resources, site_id, share=True)
        return Redirect(f"/sites/{domain}/settings#share", status_code=303)

    @post("/sites/{domain:str}/invitations", status_code=201)
    async def invite(self, request: Request[Any, Any, Any], domain: FromPath[str],
                     data: Annotated[InvitationForm, Form]) -> Template:
        async with site_transaction(request, domain, "admin") as work:
            token = await services.create_invitation(work.session, work.access, data.email, data.role, work.user.id)
        return await self._settings(request, domain, status=201,
                                    invitation_url=f"{work.resources.settings.server.base_url}/invitations/{token}")

    @post("/sites/{domain:str}/members/{user_id:int}/remove", status_code=303)
    async def remove_member(self, request: Request[Any, Any, Any],
                                  domain: FromPath[str], user_id: FromPath[int]) -> Redirect:
        async with site_transaction(request, domain, "admin") as work:
            site_id = work.access.site.id
            await services.remove_member(work.session, work.access, user_id)
        await services.revoke_live_access(work.resources, site_id, user_id=user_id)
        return Redirect(f"/sites/{domain}/settings#members", status_code=303)

    @post("/sites/{domain:str}/annotations", status_code=303)
    async def annotate(self, request: Request[Any, Any, Any], domain: FromPath[str],
                       data: Annotated[AnnotationForm, Form]) -> Redirect:
        async with site_transaction(request, domain, "admin") as work:
            await create_annotation(work.session, work.access.site.id, data.date, data.body, work.user.id)
        return Redirect(f"/sites/{domain}/settings#annotations", status_code=303)

    @post("/sites/{domain:str}/annotations/{annotation_id:int}/delete", status_code=303)
    async def unannotate(self, request: Request[Any, Any, Any],
                               domain: FromPath[str], annotation_id: FromPath[int]) -> Redirect:
        async with site_transaction(request, domain, "admin") as work:
            await delete_annotation(work.session, work.access.site.id, annotation_id)
        return Redirect(f"/sites/{domain}/settings#annotations", status_code=303)

    @get("/invitations/{token:str}")
    async def invitation(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Template | Redirect:
        user = await current_user(request)
        if user is None:
            return Redirect(f"/login?next=/invitations/{token}")
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            found = await services.pending_invitation(session, token)
        return Template("invitation.html", status_code=200 if found else 404, context={
            "user": user, "token": token, "invitation": found[0] if found else None,
            "site": found[1] if found else None})

    @post("/invitations/{token:str}", status_code=303)
    async def accept(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Redirect:
        user = await require_user(request)
        resources: Resources = request.app.state.resources
        async with resources.sessions.begin() as session:
            site = await services.accept_invitation(session, token, user)
            domain = site.domain
        return Redirect(f"/sites/{domain}", status_code=303)
