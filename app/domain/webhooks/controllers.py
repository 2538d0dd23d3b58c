"""The Webhooks API: a site's webhook endpoints and their delivery log, with a ``sites:write`` key.

The integrations service owns endpoints and deliveries; these handlers authenticate the key, check that its
user is the site's owner or admin (otherwise "not found", as the Sites API answers), and forward to it over
the shared service client. Errors are ``{"error": "..."}`` like the rest of the Plausible-style API; the
integrations service's 4xx messages name the field at fault and are passed on as they are.
"""

from __future__ import annotations

import html

import httpx
import msgspec
from litestar import Controller, MediaType, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from app.core.errors import PLAUSIBLE_EXCEPTION_HANDLERS, ServiceUnavailable
from app.core.http import ServiceClient, ServiceError
from app.core.integration_contracts import (
    AlertFiring,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    Delivery,
    PathId,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
)
from app.core.models import Site
from app.core.openapi import BEARER, plausible_responses, problem_responses
from app.domain.apikeys.deps import ApiPrincipal, api_key_dependency
from app.domain.webhooks.deps import DEPENDENCIES, SERVICES
from app.domain.webhooks.schemas import WebhookCreated, WebhookEventExamples, event_examples

Principal = NamedDependency[ApiPrincipal]
ManagedSite = NamedDependency[Site]
Services = NamedDependency[ServiceClient]

READ = plausible_responses(400, 401, 403, 404, 503)
"""Errors every operation may answer: a bad id (400), the key (401/403), an unknown site or id (404), the
integrations service unreachable (503)."""
WRITE = plausible_responses(400, 401, 403, 404, 409, 413, 503)
"""Plus a conflict with what exists (409: too many endpoints, a disabled endpoint) and a body too large (413)."""


def _no_content(response: httpx.Response) -> None:
    """Raise what a bodiless answer of the integrations service means: its 4xx as they are, a 5xx as 503.

    Raises:
        ServiceError: a 4xx, with the service's detail (or its status line when the body is not JSON).
        ServiceUnavailable: a 5xx.
    """
    if response.status_code >= 500:
        raise ServiceUnavailable(f"the integrations service failed with {response.status_code}")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail") or response.reason_phrase
        except (ValueError, AttributeError):
            detail = response.reason_phrase
        raise ServiceError(response.status_code, str(detail))


def _base(site: Site) -> str:
    return f"/sites/{site.id}/webhooks"


class WebhooksApiController(Controller):
    path = "/api/v1/sites/{domain:str}/webhooks"
    tags = ["Webhooks API"]
    dependencies = {"principal": api_key_dependency("sites:write"), **DEPENDENCIES}
    exception_handlers = PLAUSIBLE_EXCEPTION_HANDLERS
    security = [{BEARER: []}]

    @get("/", summary="List a site's webhook endpoints", responses=READ)
    async def list_webhooks(self, site: ManagedSite, services: Services) -> dict[str, list[Webhook]]:
        return {"webhooks": await services.json("integrations", "GET", _base(site))}

    @post("/", status_code=201, responses=WRITE,
          summary="Create a webhook endpoint (the answer holds its signing secret, once)")
    async def create_webhook(self, site: ManagedSite, services: Services,
                             data: JSONBody[WebhookCreate]) -> WebhookCreated:
        return await services.json("integrations", "POST", _base(site), json=msgspec.to_builtins(data))  # type: ignore[no-any-return]

    @get("/{webhook_id:int}", summary="Get a webhook endpoint", responses=READ)
    async def get_webhook(self, site: ManagedSite, services: Services, webhook_id: PathId) -> Webhook:
        return await services.json("integrations", "GET", f"{_base(site)}/{webhook_id}")  # type: ignore[no-any-return]

    @patch("/{webhook_id:int}", summary="Change a webhook endpoint (``enabled: true`` re-enables it)", responses=WRITE)
    async def update_webhook(self, site: ManagedSite, services: Services, webhook_id: PathId,
                             data: JSONBody[WebhookUpdate]) -> Webhook:
        return await services.json("integrations", "PATCH",  # type: ignore[no-any-return]
                                   f"{_base(site)}/{webhook_id}", json=msgspec.to_builtins(data))

    @delete("/{webhook_id:int}", status_code=204, responses=WRITE,
            summary="Delete a webhook endpoint and its delivery log")
    async def delete_webhook(self, site: ManagedSite, services: Services, webhook_id: PathId) -> None:
        response = await services.request("integrations", "DELETE", f"{_base(site)}/{webhook_id}")
        _no_content(response)

    @post("/{webhook_id:int}/test", status_code=202, summary="Send a webhook.test delivery now", responses=WRITE)
    async def send_test(self, site: ManagedSite, services: Services, webhook_id: PathId) -> Delivery:
        return await services.json("integrations", "POST",  # type: ignore[no-any-return]
                                   f"{_base(site)}/{webhook_id}/test")

    @get("/{webhook_id:int}/deliveries", summary="The delivery log: each delivery with its attempts", responses=READ)
    async def list_deliveries(self, site: ManagedSite, services: Services,
                              webhook_id: PathId) -> dict[str, list[Delivery]]:
        return {"deliveries": await services.json("integrations", "GET", f"{_base(site)}/{webhook_id}/deliveries")}

    @post("/{webhook_id:int}/deliveries/{delivery_id:int}/retry", status_code=202,
          summary="Send a finished delivery once more, with the same webhook-id", responses=WRITE)
    async def retry_delivery(self, site: ManagedSite, services: Services, webhook_id: PathId,
                             delivery_id: PathId) -> Delivery:
        return await services.json("integrations", "POST",  # type: ignore[no-any-return]
                                   f"{_base(site)}/{webhook_id}/deliveries/{delivery_id}/retry")




@get("/api/v1/webhooks/events", tags=["Webhooks API"], summary="The body of each webhook event type, by example")
async def webhook_events() -> WebhookEventExamples:
    """What generic endpoints receive: ``{type, timestamp, data}``; the schema of each type is in this document."""
    return event_examples()


class AlertRulesApiController(Controller):
    """A site's alert rules and their history, with a ``sites:write`` key (owner or admin)."""

    path = "/api/v1/sites/{domain:str}/alerts"
    tags = ["Alerts API"]
    dependencies = {"principal": api_key_dependency("sites:write"), **DEPENDENCIES}
    exception_handlers = PLAUSIBLE_EXCEPTION_HANDLERS
    security = [{BEARER: []}]

    @get("/", summary="List a site's alert rules", responses=READ)
    async def list_rules(self, site: ManagedSite, services: Services) -> dict[str, list[AlertRule]]:
        return {"alerts": await services.json("integrations", "GET", f"/sites/{site.id}/alerts")}

    @post("/", status_code=201, summary="Create an alert rule (spike, drop, goal threshold or anomaly)",
          responses=WRITE)
    async def create_rule(self, site: ManagedSite, services: Services, data: JSONBody[AlertRuleCreate]) -> AlertRule:
        return await services.json("integrations", "POST", f"/sites/{site.id}/alerts",  # type: ignore[no-any-return]
                                   json=msgspec.to_builtins(data))

    @patch("/{rule_id:int}", summary="Pause (``enabled: false``) or resume an alert rule", responses=WRITE)
    async def update_rule(self, site: ManagedSite, services: Services, rule_id: PathId,
                          data: JSONBody[AlertRuleUpdate]) -> AlertRule:
        return await services.json("integrations", "PATCH", f"/sites/{site.id}/alerts/{rule_id}",  # type: ignore[no-any-return]
                                   json=msgspec.to_builtins(data))

    @delete("/{rule_id:int}", status_code=204, summary="Delete an alert rule and its history", responses=WRITE)
    async def delete_rule(self, site: ManagedSite, services: Services, rule_id: PathId) -> None:
        response = await services.request("integrations", "DELETE", f"/sites/{site.id}/alerts/{rule_id}")
        _no_content(response)

    @get("/{rule_id:int}/history", summary="When the rule fired, and on what value", responses=READ)
    async def history(self, site: ManagedSite, services: Services,
                      rule_id: PathId) -> dict[str, list[AlertFiring]]:
        return {"history": await services.json("integrations", "GET", f"/sites/{site.id}/alerts/{rule_id}/history")}


PAGE = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>Beacon reports</title></head>"
        "<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">{body}</body></html>")


PAGE_ERRORS = {
    **{code: ResponseSpec(data_container=str, media_type=MediaType.HTML, generate_examples=False,
                          description=meaning) for code, meaning in (
        (400, "Not a valid unsubscribe link (a page saying so)"),
        (404, "The link's site no longer exists (a page saying so)"))},
    **problem_responses(503),
}
"""The one-click answers are pages for the person who clicked, errors included; an unreachable integrations
service is a 503 problem, as everywhere under ``/api/``."""


class UnsubscribeController(Controller):
    """One-click unsubscribe from email reports (RFC 8058): the link in ``List-Unsubscribe``.

    ``POST`` (what mail clients send with ``List-Unsubscribe=One-Click``) unsubscribes at once; ``GET`` (a
    person following the link) shows a button that posts, so link scanners cannot unsubscribe anyone.
    """

    path = "/api/v1/unsubscribe/{token:str}"
    tags = ["Email"]
    dependencies = SERVICES

    @get("/", media_type=MediaType.HTML, summary="Confirm unsubscribing from a report", include_in_schema=False)
    async def confirm(self, token: FromPath[str]) -> Response[str]:
        body = ("<h1>Unsubscribe</h1><p>Stop receiving this Beacon report?</p>"
                f"<form method=\"post\" action=\"/api/v1/unsubscribe/{html.escape(token)}\">"
                "<button type=\"submit\">Unsubscribe</button></form>")
        return Response(PAGE.format(body=body), media_type=MediaType.HTML)

    @post("/", status_code=200, media_type=MediaType.HTML, summary="Unsubscribe from a report (one click)",
          responses=PAGE_ERRORS)
    async def unsubscribe(self, services: Services, token: FromPath[str]) -> Response[str]:
        try:
            answer = await services.json("integrations", "POST", "/unsubscribe", json={"token": token})
        except ServiceError as exc:
            return Response(PAGE.format(body=f"<h1>Invalid link</h1><p>{html.escape(exc.detail)}</p>"),
                            media_type=MediaType.HTML, status_code=exc.status_code)
        body = (f"<h1>Unsubscribed</h1><p>You will no longer receive the {html.escape(answer['kind'])} report "
                f"of {html.escape(answer['site'])}.</p>")
        return Response(PAGE.format(body=body), media_type=MediaType.HTML)
