"""The site's webhooks page (site owners and admins): endpoints, their recent deliveries, add, test, enable,
disable, delete. Like the API, it asks the integrations service, which owns the data."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.core.errors import ClientError
from app.core.http import ServiceClient, ServiceError
from app.core.models import Site, User
from app.core.pages import FormState, flash
from app.core.resources import Resources
from app.domain.accounts.deps import require_user
from app.domain.sites.services import site_access

EVENT_TYPES = (
    ("goal.completed", "Goal conversions (one message per minute listing each)"),
    ("traffic.spike", "Traffic spike alerts"),
    ("traffic.drop", "Traffic drop alerts"),
    ("report.weekly", "Weekly report"),
    ("report.monthly", "Monthly report"),
    ("site.first_event", "The site's first event"),
    ("webhook.test", "Test messages"),
)
FORMATS = (("generic", "JSON (Standard Webhooks)"), ("slack", "Slack incoming webhook"),
           ("discord", "Discord webhook"))


async def managed_site(request: Request[Any, Any, Any], domain: str) -> tuple[User, Site, ServiceClient]:
    """The signed-in user, the site they administer (404 otherwise), and the service client."""
    user = await require_user(request)
    resources: Resources = request.app.state.resources
    async with resources.sessions() as session:
        access = await site_access(session, user.id, domain, "admin")
    return user, access.site, resources.services


class WebhooksPageController(Controller):
    path = "/sites/{domain:str}/webhooks"
    include_in_schema = False

    async def _page(self, request: Request[Any, Any, Any], domain: str, *, status: int = 200,
                    form: FormState | None = None, secret: str | None = None) -> Template:
        user, site, services = await managed_site(request, domain)
        webhooks = await services.json("integrations", "GET", f"/sites/{site.id}/webhooks")
        for webhook in webhooks:
            deliveries = await services.json("integrations", "GET",
                                             f"/sites/{site.id}/webhooks/{webhook['id']}/deliveries")
            webhook["deliveries"] = deliveries[:5]
        return Template("site_webhooks.html", status_code=status, context={
            "user": user, "site": site, "webhooks": webhooks, "event_types": EVENT_TYPES, "formats": FORMATS,
            "form": form or FormState(), "secret": secret})

    @get("/")
    async def index(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template:
        return await self._page(request, domain)

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template:
        """Add an endpoint; the page shows its signing secret this once."""
        _, site, services = await managed_site(request, domain)
        form = await request.form()
        values = {"url": str(form.get("url", "")).strip(), "format": str(form.get("format", "generic")),
                  "description": str(form.get("description", "")).strip(),
                  "event_types": [str(value) for value in form.getall("event_types")]}
        try:
            created = await services.json("integrations", "POST", f"/sites/{site.id}/webhooks", json=values)
        except ServiceError as exc:
            return await self._page(request, domain, status=exc.status_code, form=FormState.failed(
                ClientError(exc.detail), values))
        return await self._page(request, domain, status=201, secret=created["secret"])

    async def _action(self, request: Request[Any, Any, Any], domain: str, method: str, path: str, done: str,
                      json: dict[str, Any] | None = None) -> Redirect:
        _, site, services = await managed_site(request, domain)
        try:
            response = await services.request("integrations", method, f"/sites/{site.id}/webhooks/{path}", json=json)
            if response.status_code >= 400:
                raise ServiceError(response.status_code, str(response.json().get("detail", "")))
        except ServiceError as exc:
            flash(request, exc.detail[:1].upper() + exc.detail[1:], "error")
        else:
            flash(request, done)
        return Redirect(f"/sites/{domain}/webhooks", status_code=303)

    @post("/{webhook_id:int}/test", status_code=303)
    async def test(self, request: Request[Any, Any, Any], domain: FromPath[str], webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, domain, "POST", f"{webhook_id}/test",
                                  "A test message is on its way; its outcome shows below in a moment.")

    @post("/{webhook_id:int}/enable", status_code=303)
    async def enable(self, request: Request[Any, Any, Any], domain: FromPath[str],
                     webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, domain, "PATCH", str(webhook_id), "Endpoint enabled.", {"enabled": True})

    @post("/{webhook_id:int}/disable", status_code=303)
    async def disable(self, request: Request[Any, Any, Any], domain: FromPath[str],
                      webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, domain, "PATCH", str(webhook_id), "Endpoint disabled.", {"enabled": False})

    @post("/{webhook_id:int}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], domain: FromPath[str],
                     webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, domain, "DELETE", str(webhook_id), "Endpoint deleted.")


class ReportsPageController(Controller):
    """Any member's choice of weekly and monthly email reports for a site."""

    path = "/sites/{domain:str}/reports"
    include_in_schema = False

    @get("/")
    async def index(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template:
        user, site, services = await member_site(request, domain)
        choice = await services.json("integrations", "GET", f"/sites/{site.id}/reports/{user.id}")
        return Template("site_reports.html", context={"user": user, "site": site, "choice": choice})

    @post("/", status_code=303)
    async def choose(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Redirect:
        user, site, services = await member_site(request, domain)
        form = await request.form()
        choice = {"weekly": form.get("weekly") == "on", "monthly": form.get("monthly") == "on"}
        await services.json("integrations", "PUT", f"/sites/{site.id}/reports/{user.id}", json=choice)
        flash(request, "Your email reports are saved.")
        return Redirect(f"/sites/{domain}/reports", status_code=303)


async def member_site(request: Request[Any, Any, Any], domain: str) -> tuple[User, Site, ServiceClient]:
    """The signed-in user, a site they are a member of (any role; 404 otherwise), and the service client."""
    user = await require_user(request)
    resources: Resources = request.app.state.resources
    async with resources.sessions() as session:
        access = await site_access(session, user.id, domain, "viewer")
    return user, access.site, resources.services
