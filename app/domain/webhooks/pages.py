"""The site's webhooks page (site owners and admins): endpoints, their recent deliveries, add, test, enable,
disable, delete. Like the API, it asks the integrations service, which owns the data."""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from app.core.errors import ClientError, NotFound, ServiceUnavailable
from app.core.http import ServiceError
from app.core.models import Goal
from app.core.pages import FormState, flash
from app.core.resources import Resources
from app.domain.access.deps import SITE_PAGE_DEPENDENCIES, SitePage
from app.domain.accounts.deps import USER_DEPENDENCIES

EVENT_TYPES = (
    ("goal.completed", "Goal conversions (one message per minute listing each)"),
    ("traffic.spike", "Traffic spike alerts"),
    ("traffic.drop", "Traffic drop alerts"),
    ("report.weekly", "Weekly report"),
    ("report.monthly", "Monthly report"),
    ("site.first_event", "The site's first event"),
    ("webhook.test", "Test messages"),
)
Managed = NamedDependency[SitePage]
Member = NamedDependency[SitePage]
Res = NamedDependency[Resources]

FORMATS = (("generic", "JSON (Standard Webhooks)"), ("slack", "Slack incoming webhook"),
           ("discord", "Discord webhook"))


class WebhooksPageController(Controller):
    path = "/sites/{domain:str}/webhooks"
    include_in_schema = False
    dependencies = {**USER_DEPENDENCIES, **SITE_PAGE_DEPENDENCIES}

    async def _page(self, managed: SitePage, *, status: int = 200, form: FormState | None = None,
                    secret: str | None = None) -> Template:
        user, site, services = managed
        webhooks = await services.json("integrations", "GET", f"/sites/{site.id}/webhooks")
        for webhook in webhooks:
            deliveries = await services.json("integrations", "GET",
                                             f"/sites/{site.id}/webhooks/{webhook['id']}/deliveries")
            webhook["deliveries"] = deliveries[:5]
        return Template("site_webhooks.html", status_code=status, context={
            "user": user, "site": site, "webhooks": webhooks, "event_types": EVENT_TYPES, "formats": FORMATS,
            "form": form or FormState(), "secret": secret})

    @get("/")
    async def index(self, managed: Managed) -> Template:
        return await self._page(managed)

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], managed: Managed) -> Template:
        """Add an endpoint; the page shows its signing secret this once."""
        _, site, services = managed
        form = await request.form()
        values = {"url": str(form.get("url", "")).strip(), "format": str(form.get("format", "generic")),
                  "description": str(form.get("description", "")).strip(),
                  "event_types": [str(value) for value in form.getall("event_types", [])]}
        try:
            created = await services.json("integrations", "POST", f"/sites/{site.id}/webhooks", json=values)
        except ServiceError as exc:
            return await self._page(managed, status=exc.status_code, form=FormState.failed(
                ClientError(exc.detail), values))
        return await self._page(managed, status=201, secret=created["secret"])

    async def _action(self, request: Request[Any, Any, Any], managed: SitePage, domain: str, method: str, path: str,
                      done: str, json: dict[str, Any] | None = None) -> Redirect:
        _, site, services = managed
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
    async def test(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                   webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, managed, domain, "POST", f"{webhook_id}/test",
                                  "A test message is on its way; its outcome shows below in a moment.")

    @post("/{webhook_id:int}/enable", status_code=303)
    async def enable(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                     webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, managed, domain, "PATCH", str(webhook_id), "Endpoint enabled.",
                                  {"enabled": True})

    @post("/{webhook_id:int}/disable", status_code=303)
    async def disable(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                      webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, managed, domain, "PATCH", str(webhook_id), "Endpoint disabled.",
                                  {"enabled": False})

    @post("/{webhook_id:int}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                     webhook_id: FromPath[int]) -> Redirect:
        return await self._action(request, managed, domain, "DELETE", str(webhook_id), "Endpoint deleted.")


class ReportsPageController(Controller):
    """Any member's choice of weekly and monthly email reports for a site."""

    path = "/sites/{domain:str}/reports"
    include_in_schema = False
    dependencies = {**USER_DEPENDENCIES, **SITE_PAGE_DEPENDENCIES}

    @get("/")
    async def index(self, member: Member) -> Template:
        user, site, services = member
        choice = await services.json("integrations", "GET", f"/sites/{site.id}/reports/{user.id}")
        return Template("site_reports.html", context={"user": user, "site": site, "choice": choice})

    @post("/", status_code=303)
    async def choose(self, request: Request[Any, Any, Any], member: Member, domain: FromPath[str]) -> Redirect:
        user, site, services = member
        form = await request.form()
        choice = {"weekly": form.get("weekly") == "on", "monthly": form.get("monthly") == "on"}
        await services.json("integrations", "PUT", f"/sites/{site.id}/reports/{user.id}", json=choice)
        flash(request, "Your email reports are saved.")
        return Redirect(f"/sites/{domain}/reports", status_code=303)



RULE_KINDS: dict[str, dict[str, Any]] = {
    "spike": {"title": "Traffic spike", "message": "traffic.spike",
              "intro": "When the current visitors (the last 5 minutes) reach a number.",
              "fields": [("threshold", "Current visitors at least", 1)]},
    "drop": {"title": "Traffic drop", "message": "traffic.drop",
             "intro": "When the last hour is quiet while the same hour a week earlier was busy.",
             "fields": [("threshold", "Visitors in the last hour at most", 0),
                        ("baseline", "While the same hour last week had at least", 1)]},
    "goal": {"title": "Goal conversions", "message": "goal.threshold",
             "intro": "When a goal's conversions today (the site's time zone) reach a number.",
             "fields": [("threshold", "Conversions today at least", 1)]},
}
"""The kinds the page can create, with their numeric parameters (name, label, minimum). Rules of other kinds
that the API returns (e.g. ``anomaly``) are listed with their parameters as they are."""

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_COOLDOWN_MINUTES = 720


def describe_rule(rule: dict[str, Any]) -> str:
    """The rule's condition in words; a kind this page does not know shows its parameters."""
    params = rule.get("params") or {}
    if rule["kind"] == "spike":
        return f"Current visitors ≥ {params.get('threshold')}"
    if rule["kind"] == "drop":
        return (f"Visitors in the last hour ≤ {params.get('threshold')} while the same hour last week had "
                f"≥ {params.get('baseline')}")
    if rule["kind"] == "goal":
        return f"Conversions of “{params.get('goal')}” today ≥ {params.get('threshold')}"
    return ", ".join(f"{name} = {value}" for name, value in sorted(params.items())) or "no parameters"


def duration(seconds: int) -> str:
    """``43200`` → ``12 h``, ``5400`` → ``90 min``."""
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _whole(form: Any, name: str, label: str) -> int:
    raw = str(form.get(name, "")).strip()
    try:
        return int(raw)
    except ValueError:
        raise ClientError(f"{name}: {label} must be a whole number") from None


def parse_rule_form(form: Any, kind: str) -> dict[str, Any]:
    """The Alerts API's body from the page's form; a ``ClientError`` naming the field when a value is malformed.

    Ranges (thresholds, the goal, at least one recipient or endpoint) are the integrations service's to check.
    """
    params: dict[str, Any] = {name: _whole(form, name, label) for name, label, _ in RULE_KINDS[kind]["fields"]}
    if kind == "goal":
        params["goal"] = str(form.get("goal", "")).strip()
    recipients = [item for item in re.split(r"[\s,;]+", str(form.get("recipients", ""))) if item]
    for item in recipients:
        if not EMAIL.match(item) or len(item) > 254:
            raise ClientError(f"recipients: {item!r} is not an email address")
    if len(recipients) > 20:
        raise ClientError("recipients: at most 20 addresses")
    try:
        endpoint_ids = [int(value) for value in form.getall("endpoint_ids", [])]
    except ValueError:
        raise ClientError("endpoint_ids: choose endpoints from the list") from None
    minutes = _whole(form, "cooldown", "The cool-down")
    if not 1 <= minutes <= 30 * 1440:
        raise ClientError("cooldown: between 1 minute and 30 days (43200 minutes)")
    return {"kind": kind, "params": params, "recipients": recipients, "endpoint_ids": endpoint_ids,
            "cooldown": minutes * 60}


class AlertsPageController(Controller):
    """The site's alert rules (owners and admins): list, add one of each kind, pause, resume, delete, and each
    rule's history."""

    path = "/sites/{domain:str}/alerts"
    include_in_schema = False
    dependencies = {**USER_DEPENDENCIES, **SITE_PAGE_DEPENDENCIES}

    async def _page(self, resources: Resources, managed: SitePage, *, status: int = 200,
                    failed: tuple[str, FormState] | None = None) -> Template:
        user, site, services = managed
        rules = await services.json("integrations", "GET", f"/sites/{site.id}/alerts")
        webhooks = await services.json("integrations", "GET", f"/sites/{site.id}/webhooks")
        urls = {hook["id"]: hook["url"] for hook in webhooks}
        for rule in rules:
            rule["condition"] = describe_rule(rule)
            rule["title"] = RULE_KINDS.get(rule["kind"], {}).get("title", rule["kind"].capitalize())
            rule["endpoints"] = [urls.get(i, f"#{i}") for i in rule["endpoint_ids"]]
            rule["cooldown_text"] = duration(int(rule["cooldown"]))
        async with resources.sessions() as session:
            goals = list((await session.execute(select(Goal.display_name).where(Goal.site_id == site.id)
                                                .order_by(Goal.display_name))).scalars())
        forms = {kind: FormState() for kind in RULE_KINDS}
        if failed is not None:
            forms[failed[0]] = failed[1]
        return Template("site_alerts.html", status_code=status, context={
            "user": user, "site": site, "rules": rules, "webhooks": webhooks, "goals": goals, "kinds": RULE_KINDS,
            "forms": forms, "default_cooldown": DEFAULT_COOLDOWN_MINUTES})

    @get("/")
    async def index(self, resources: Res, managed: Managed) -> Template:
        return await self._page(resources, managed)

    @post("/", status_code=303)
    async def create(self, request: Request[Any, Any, Any], resources: Res, managed: Managed,
                     domain: FromPath[str]) -> Template | Redirect:
        """Add a rule from one of the page's forms; a refused one comes back with the error next to its field."""
        _, site, services = managed
        form = await request.form()
        kind = str(form.get("kind", ""))
        if kind not in RULE_KINDS:
            raise ClientError(f"kind: one of {', '.join(RULE_KINDS)}")
        values = {name: form.get(name, "") for name in ("threshold", "baseline", "goal", "recipients", "cooldown")}
        values["endpoint_ids"] = [str(value) for value in form.getall("endpoint_ids", [])]
        try:
            body = parse_rule_form(form, kind)
            await services.json("integrations", "POST", f"/sites/{site.id}/alerts", json=body)
        except ClientError as exc:
            return await self._page(resources, managed, status=exc.status_code,
                                    failed=(kind, FormState.failed(exc, values)))
        except ServiceError as exc:
            # The service names API fields; the page's fields are the parameters themselves.
            detail = exc.detail.removeprefix("params.").replace(" (endpoint_ids)", "")
            return await self._page(resources, managed, status=exc.status_code,
                                    failed=(kind, FormState.failed(ClientError(detail), values)))
        flash(request, f"{RULE_KINDS[kind]['title']} alert added.")
        return Redirect(f"/sites/{domain}/alerts", status_code=303)

    @post("/{rule_id:int}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                    rule_id: FromPath[int]) -> Redirect:
        _, site, services = managed
        response = await services.request("integrations", "DELETE", f"/sites/{site.id}/alerts/{rule_id}")
        if response.status_code == 404:
            raise NotFound("alert rule not found")
        if response.status_code >= 400:
            raise ServiceUnavailable(f"the integrations service failed with {response.status_code}")
        flash(request, "Alert deleted with its history.")
        return Redirect(f"/sites/{domain}/alerts", status_code=303)

    async def _set_enabled(self, request: Request[Any, Any, Any], managed: SitePage, domain: str, rule_id: int,
                           enabled: bool) -> Redirect:
        _, site, services = managed
        response = await services.request("integrations", "PATCH", f"/sites/{site.id}/alerts/{rule_id}",
                                          json={"enabled": enabled})
        if response.status_code == 404:
            raise NotFound("alert rule not found")
        if response.status_code >= 400:
            raise ServiceUnavailable(f"the integrations service failed with {response.status_code}")
        flash(request, "Alert resumed." if enabled else "Alert paused: it is not checked until you resume it.")
        return Redirect(f"/sites/{domain}/alerts", status_code=303)

    @post("/{rule_id:int}/pause", status_code=303)
    async def pause(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                    rule_id: FromPath[int]) -> Redirect:
        return await self._set_enabled(request, managed, domain, rule_id, False)

    @post("/{rule_id:int}/resume", status_code=303)
    async def resume(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                    rule_id: FromPath[int]) -> Redirect:
        return await self._set_enabled(request, managed, domain, rule_id, True)

    @get("/{rule_id:int}")
    async def history(self, managed: Managed, rule_id: FromPath[int]) -> Template:
        """One rule and when it fired (newest first, the last 100)."""
        user, site, services = managed
        rules = await services.json("integrations", "GET", f"/sites/{site.id}/alerts")
        rule = next((item for item in rules if item["id"] == rule_id), None)
        if rule is None:
            raise NotFound("alert rule not found")
        firings = await services.json("integrations", "GET", f"/sites/{site.id}/alerts/{rule_id}/history")
        rule["condition"] = describe_rule(rule)
        rule["title"] = RULE_KINDS.get(rule["kind"], {}).get("title", rule["kind"].capitalize())
        rule["cooldown_text"] = duration(int(rule["cooldown"]))
        return Template("site_alert_history.html", context={"user": user, "site": site, "rule": rule,
                                                             "firings": firings})
