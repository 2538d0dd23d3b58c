"""Site pages: the sites list, create and set up, settings (domain, time zone, goals, share link, members,
exclusions, annotations), delete."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, NamedTuple

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError
from app.core.models import User
from app.core.pages import FormState, flash
from app.core.resources import Resources
from app.domain.access.services import SiteAccess, site_access
from app.domain.accounts.deps import USER_DEPENDENCIES
from app.domain.accounts.services import pending_invitation
from app.domain.annotations.services import create_annotation, delete_annotation, list_annotations
from app.domain.sites import services

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
Res = NamedDependency[Resources]
SignedInUser = NamedDependency[User]
Session = NamedDependency[AsyncSession]


class SiteWork(NamedTuple):
    user: User
    access: SiteAccess
    session: AsyncSession
    resources: Resources


@contextlib.asynccontextmanager
async def site_transaction(resources: Resources, user: User, domain: str, role: str) -> AsyncIterator[SiteWork]:
    """A transaction on ``domain`` for the signed-in ``user``, who must have at least ``role`` on it (404
    otherwise, as for a site that does not exist); it commits when the block succeeds."""
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


class ExclusionForm(msgspec.Struct):
    kind: str = ""
    pattern: str = ""


SETTINGS_FORMS = ("general", "goal", "invite", "exclusion", "annotation")


async def settings_context(resources: Resources, session: AsyncSession, user: User,
                           access: SiteAccess, forms: dict[str, FormState] | None = None,
                           **extra: Any) -> dict[str, Any]:
    site = access.site
    return {
        "user": user, "site": site, "role": access.role, "can_own": access.allows("owner"),
        "snippet": services.tracker_snippet(resources.settings.server.base_url, site.domain),
        "goals": await services.list_goals(session, site.id),
        "members": await services.list_members(session, site.id),
        "annotations": await list_annotations(session, site.id),
        "exclusions": await services.list_exclusions(session, site.id),
        "shared": site.share_token_hash is not None,
        "base_url": resources.settings.server.base_url,
        "share_url": None, "invitation_url": None,
        "forms": {name: FormState() for name in SETTINGS_FORMS} | (forms or {}),
        **extra,
    }


class SiteController(Controller):
    """Handlers take the resources, the request's session and the signed-in user from ``USER_DEPENDENCIES``.

    A handler that then asks the analytics service (the sites list, the setup page) keeps its database session
    short instead, so no connection is held while that service answers.
    """

    include_in_schema = False
    dependencies = USER_DEPENDENCIES

    async def _settings(self, resources: Resources, user: User, domain: str, *, status: int = 200,
                        **extra: Any) -> Template:
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "admin")
            context = await settings_context(resources, session, user, access, **extra)
        return Template("site_settings.html", status_code=status, context=context)

    async def _submit(self, request: Request[Any, Any, Any], resources: Resources, user: User, domain: str,
                      role: str, form: str,
                      values: dict[str, Any], action: Callable[[SiteWork], Awaitable[str | None]],
                      done: str, then: str) -> Template | Redirect:
        """Run a settings form's ``action`` on the site; a client error shows the form again, with the values
        kept and the message next to its field, while a missing site or role stays an error page."""
        work: SiteWork | None = None
        try:
            async with site_transaction(resources, user, domain, role) as work:
                target = await action(work)
        except ClientError as exc:
            if work is None:
                raise
            return await self._settings(resources, user, domain, status=exc.status_code,
                                        forms={form: FormState.failed(exc, values)})
        flash(request, done)
        return Redirect(f"/sites/{target or domain}/settings#{then}", status_code=303)

    @get("/")
    async def index(self, user: SignedInUser, resources: Res) -> Template:
        """The sites list: each site with today's visitors and a sparkline of the last days."""
        async with resources.sessions() as session:
            sites = await services.list_sites_with_roles(session, user.id)
        overviews, error = await services.visitor_overviews(resources, [site for site, _ in sites])
        items = [{"site": site, "role": role, "days": overviews[site.id].days if site.id in overviews else None,
                  "today": overviews[site.id].today if site.id in overviews else None} for site, role in sites]
        return Template("sites.html", context={"user": user, "sites": items, "stats_error": error, "nav": "sites"})

    @get("/sites/new")
    async def new_site(self, user: SignedInUser) -> Template:
        return Template("site_new.html", context={"user": user, "form": FormState(), "nav": "new"})

    @post("/sites", status_code=303)
    async def create(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                     data: Annotated[SiteForm, Form]) -> Template | Redirect:
        try:
            async with resources.sessions.begin() as session:
                site = await services.create_site(session, data.domain, data.timezone.strip(), owner_id=user.id)
                domain = site.domain
        except ClientError as exc:
            return Template("site_new.html", status_code=exc.status_code, context={
                "user": user, "nav": "new",
                "form": FormState.failed(exc, {"domain": data.domain, "timezone": data.timezone})})
        flash(request, f"{domain} is added. Now add the tracker to its pages.")
        return Redirect(f"/sites/{domain}/setup", status_code=303)

    @get("/sites/{domain:str}/setup")
    async def setup(self, user: SignedInUser, resources: Res, domain: FromPath[str]) -> Template:
        """The tracker snippet and whether the first event has arrived (checked again by the page itself)."""
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "admin")
        received = await services.has_events(resources, access.site.id)
        return Template("site_setup.html", context={
            "user": user, "site": access.site, "received": received,
            "snippet": services.tracker_snippet(resources.settings.server.base_url, access.site.domain)})

    @get("/sites/{domain:str}/status")
    async def status(self, user: SignedInUser, resources: Res, domain: FromPath[str]) -> Response[dict[str, Any]]:
        """``{"received": true}`` once the site's first event is stored (the setup page asks this)."""
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "viewer")
        received = await services.has_events(resources, access.site.id)
        return Response({"domain": access.site.domain, "received": received},
                        headers={"Cache-Control": "no-store"})

    @get("/sites/{domain:str}/settings")
    async def settings(self, user: SignedInUser, resources: Res, domain: FromPath[str]) -> Template:
        return await self._settings(resources, user, domain)

    @post("/sites/{domain:str}/settings", status_code=303)
    async def update(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res, domain: FromPath[str],
                     data: Annotated[SiteForm, Form]) -> Template | Redirect:
        async def action(work: SiteWork) -> str:
            await services.update_site(work.session, work.access.site, data.domain, data.timezone)
            return work.access.site.domain

        return await self._submit(request, resources, user, domain, "admin", "general",
                                  {"domain": data.domain, "timezone": data.timezone}, action, "Settings saved.",
                                  "general")

    @get("/sites/{domain:str}/delete")
    async def confirm_delete(self, user: SignedInUser, db_session: Session, domain: FromPath[str]) -> Template:
        access = await site_access(db_session, user.id, domain, "owner")
        return Template("site_delete.html", context={"user": user, "site": access.site, "form": FormState()})

    @post("/sites/{domain:str}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res, domain: FromPath[str],
                     data: Annotated[DeleteForm, Form]) -> Template | Redirect:
        work: SiteWork | None = None
        try:
            async with site_transaction(resources, user, domain, "owner") as work:
                site_id, site_domain = work.access.site.id, work.access.site.domain
                await services.delete_site(work.session, work.access.site, data.confirm)
        except ClientError as exc:
            if work is None:
                raise
            return Template("site_delete.html", status_code=exc.status_code, context={
                "user": work.user, "site": {"domain": site_domain},
                "form": FormState.failed(exc, {"confirm": data.confirm})})
        await services.revoke_live_access(work.resources, site_id, deleted=True)
        flash(request, f"{domain} and its data are deleted.")
        return Redirect("/", status_code=303)

    @post("/sites/{domain:str}/goals", status_code=303)
    async def add_goal(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res, domain: FromPath[str],
                       data: Annotated[GoalForm, Form]) -> Template | Redirect:
        async def action(work: SiteWork) -> None:
            await services.find_or_create_goal(work.session, work.access.site, data.goal_type, data.event_name,
                                               data.page_path, data.display_name)

        return await self._submit(request, resources, user, domain, "admin", "goal", msgspec.structs.asdict(data),
                                  action,
                                  "Goal added.", "goals")

    @post("/sites/{domain:str}/goals/{goal_id:int}/delete", status_code=303)
    async def remove_goal(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                          domain: FromPath[str], goal_id: FromPath[int]) -> Redirect:
        async with site_transaction(resources, user, domain, "admin") as work:
            await services.delete_goal(work.session, work.access.site.id, goal_id)
        flash(request, "Goal deleted.")
        return Redirect(f"/sites/{domain}/settings#goals", status_code=303)

    @post("/sites/{domain:str}/share", status_code=201)
    async def share(self, user: SignedInUser, resources: Res, domain: FromPath[str]) -> Template:
        async with site_transaction(resources, user, domain, "admin") as work:
            site_id = work.access.site.id
            token = await services.create_share_link(work.session, work.access.site)
        await services.revoke_live_access(work.resources, site_id, share=True)  # the previous link, if any
        return await self._settings(resources, user, domain, status=201,
                                    share_url=f"{work.resources.settings.server.base_url}/share/{token}")

    @post("/sites/{domain:str}/share/revoke", status_code=303)
    async def unshare(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                      domain: FromPath[str]) -> Redirect:
        async with site_transaction(resources, user, domain, "admin") as work:
            site_id = work.access.site.id
            await services.revoke_share_link(work.session, work.access.site)
        await services.revoke_live_access(work.resources, site_id, share=True)
        flash(request, "Share link revoked: it no longer opens the dashboard.")
        return Redirect(f"/sites/{domain}/settings#share", status_code=303)

    @post("/sites/{domain:str}/invitations", status_code=201)
    async def invite(self, user: SignedInUser, resources: Res, domain: FromPath[str],
                     data: Annotated[InvitationForm, Form]) -> Template:
        work: SiteWork | None = None
        try:
            async with site_transaction(resources, user, domain, "admin") as work:
                token = await services.create_invitation(work.session, work.access, data.email, data.role,
                                                         work.user.id)
        except ClientError as exc:
            if work is None:
                raise
            return await self._settings(resources, user, domain, status=exc.status_code,
                                        forms={"invite": FormState.failed(exc, msgspec.structs.asdict(data))})
        return await self._settings(resources, user, domain, status=201, invited_email=data.email.strip().lower(),
                                    invitation_url=f"{work.resources.settings.server.base_url}/invitations/{token}")

    @post("/sites/{domain:str}/members/{user_id:int}/remove", status_code=303)
    async def remove_member(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                            domain: FromPath[str], user_id: FromPath[int]) -> Redirect:
        async with site_transaction(resources, user, domain, "admin") as work:
            site_id = work.access.site.id
            await services.remove_member(work.session, work.access, user_id)
        await services.revoke_live_access(work.resources, site_id, user_id=user_id)
        flash(request, "Member removed.")
        return Redirect(f"/sites/{domain}/settings#members", status_code=303)

    @post("/sites/{domain:str}/exclusions", status_code=303)
    async def exclude(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res, domain: FromPath[str],
                      data: Annotated[ExclusionForm, Form]) -> Template | Redirect:
        async def action(work: SiteWork) -> None:
            await services.add_exclusion(work.session, work.access.site.id, data.kind, data.pattern)

        return await self._submit(request, resources, user, domain, "admin", "exclusion", msgspec.structs.asdict(data),
                                  action,
                                  "Exclusion added.", "exclusions")

    @post("/sites/{domain:str}/exclusions/{exclusion_id:int}/delete", status_code=303)
    async def unexclude(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                        domain: FromPath[str], exclusion_id: FromPath[int]) -> Redirect:
        async with site_transaction(resources, user, domain, "admin") as work:
            await services.delete_exclusion(work.session, work.access.site.id, exclusion_id)
        flash(request, "Exclusion deleted.")
        return Redirect(f"/sites/{domain}/settings#exclusions", status_code=303)

    @post("/sites/{domain:str}/annotations", status_code=303)
    async def annotate(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res, domain: FromPath[str],
                       data: Annotated[AnnotationForm, Form]) -> Template | Redirect:
        async def action(work: SiteWork) -> None:
            await create_annotation(work.session, work.access.site.id, data.date, data.body, work.user.id)

        return await self._submit(request, resources, user, domain, "admin", "annotation",
                                  msgspec.structs.asdict(data), action,
                                  "Annotation added.", "annotations")

    @post("/sites/{domain:str}/annotations/{annotation_id:int}/delete", status_code=303)
    async def unannotate(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                         domain: FromPath[str], annotation_id: FromPath[int]) -> Redirect:
        async with site_transaction(resources, user, domain, "admin") as work:
            await delete_annotation(work.session, work.access.site.id, annotation_id)
        flash(request, "Annotation deleted.")
        return Redirect(f"/sites/{domain}/settings#annotations", status_code=303)

    @get("/invitations/{token:str}")
    async def invitation(self, user: SignedInUser, db_session: Session, token: FromPath[str]) -> Template:
        found = await pending_invitation(db_session, token)
        return Template("invitation.html", status_code=200 if found else 404, context={
            "user": user, "token": token, "invitation": found[0] if found else None,
            "site": found[1] if found else None})

    @post("/invitations/{token:str}", status_code=303)
    async def accept(self, request: Request[Any, Any, Any], user: SignedInUser, resources: Res,
                     token: FromPath[str]) -> Redirect:
        async with resources.sessions.begin() as session:
            site = await services.accept_invitation(session, token, user)
            domain = site.domain
        flash(request, f"You are now a member of {domain}.")
        return Redirect(f"/sites/{domain}", status_code=303)
