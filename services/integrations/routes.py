"""Internal endpoints of the integrations service (called by the api with the internal token).

The api has authenticated the caller and checked their role on the site; these take the site's id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.integration_contracts import (
    AlertFiring,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    Delivery,
    PasswordResetMail,
    PathId,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
)
from app.core.internal import internal_token_guard
from app.core.resources import ResourcesDep
from app.core.settings import Settings
from services.integrations import logic, mail
from services.integrations.schemas import ReportChoice, Unsubscribe, Unsubscribed


async def provide_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """A session in a transaction: committed when the handler returns, rolled back when it raises."""
    async with resources.sessions.begin() as session:
        yield session


def provide_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


Session = NamedDependency[AsyncSession]
SettingsDep = NamedDependency[Settings]


class WebhooksController(Controller):
    path = "/sites/{site_id:int}/webhooks"
    guards = [internal_token_guard]
    dependencies = {"session": Provide(provide_session), "settings": Provide(provide_settings, sync_to_thread=False)}

    @get("/")
    async def list_webhooks(self, session: Session, site_id: PathId) -> list[Webhook]:
        return await logic.list_webhooks(session, site_id)

    @post("/", status_code=201)
    async def create_webhook(self, session: Session, settings: SettingsDep, site_id: PathId,
                             data: JSONBody[WebhookCreate]) -> Webhook:
        return await logic.create_webhook(session, settings, site_id, data)

    @get("/{webhook_id:int}")
    async def get_webhook(self, session: Session, site_id: PathId, webhook_id: PathId) -> Webhook:
        return await logic.get_webhook(session, site_id, webhook_id)

    @patch("/{webhook_id:int}")
    async def update_webhook(self, session: Session, settings: SettingsDep, site_id: PathId,
                             webhook_id: PathId, data: JSONBody[WebhookUpdate]) -> Webhook:
        return await logic.update_webhook(session, settings, site_id, webhook_id, data)

    @delete("/{webhook_id:int}", status_code=204)
    async def delete_webhook(self, session: Session, site_id: PathId, webhook_id: PathId) -> None:
        await logic.delete_webhook(session, site_id, webhook_id)

    @post("/{webhook_id:int}/test", status_code=202)
    async def send_test(self, session: Session, settings: SettingsDep, site_id: PathId,
                        webhook_id: PathId) -> Delivery:
        return await logic.send_test(session, settings, site_id, webhook_id)

    @get("/{webhook_id:int}/deliveries")
    async def list_deliveries(self, session: Session, site_id: PathId,
                              webhook_id: PathId) -> list[Delivery]:
        return await logic.list_deliveries(session, site_id, webhook_id)

    @get("/{webhook_id:int}/deliveries/{delivery_id:int}")
    async def get_delivery(self, session: Session, site_id: PathId, webhook_id: PathId,
                           delivery_id: PathId) -> Delivery:
        return await logic.get_delivery(session, site_id, webhook_id, delivery_id)

    @post("/{webhook_id:int}/deliveries/{delivery_id:int}/retry", status_code=202)
    async def retry_delivery(self, session: Session, settings: SettingsDep, site_id: PathId,
                             webhook_id: PathId, delivery_id: PathId) -> Delivery:
        return await logic.retry_delivery(session, settings, site_id, webhook_id, delivery_id)


@post("/unsubscribe", guards=[internal_token_guard], status_code=200,
      dependencies={"session": Provide(provide_session), "settings": Provide(provide_settings, sync_to_thread=False)})
async def unsubscribe(session: Session, settings: SettingsDep, data: JSONBody[Unsubscribe]) -> Unsubscribed:
    """Turn off the report a signed one-click unsubscribe token names."""
    site, kind = await logic.unsubscribe(session, settings, data.token)
    return Unsubscribed(site=site, kind=kind)


class AlertRulesController(Controller):
    path = "/sites/{site_id:int}/alerts"
    guards = [internal_token_guard]
    dependencies = {"session": Provide(provide_session)}

    @get("/")
    async def list_rules(self, session: Session, site_id: PathId) -> list[AlertRule]:
        return await logic.list_rules(session, site_id)

    @post("/", status_code=201)
    async def create_rule(self, session: Session, site_id: PathId,
                          data: JSONBody[AlertRuleCreate]) -> AlertRule:
        return await logic.create_rule(session, site_id, data)

    @patch("/{rule_id:int}")
    async def update_rule(self, session: Session, site_id: PathId, rule_id: PathId,
                          data: JSONBody[AlertRuleUpdate]) -> AlertRule:
        return await logic.update_rule(session, site_id, rule_id, data)

    @delete("/{rule_id:int}", status_code=204)
    async def delete_rule(self, session: Session, site_id: PathId, rule_id: PathId) -> None:
        await logic.delete_rule(session, site_id, rule_id)

    @get("/{rule_id:int}/history")
    async def history(self, session: Session, site_id: PathId, rule_id: PathId) -> list[AlertFiring]:
        return await logic.rule_history(session, site_id, rule_id)


class ReportsController(Controller):
    """A member's choice of email reports for a site."""

    path = "/sites/{site_id:int}/reports/{user_id:int}"
    guards = [internal_token_guard]
    dependencies = {"session": Provide(provide_session)}

    @get("/")
    async def get_choice(self, session: Session, site_id: PathId, user_id: PathId) -> ReportChoice:
        return await logic.report_choice(session, site_id, user_id)

    @put("/")
    async def choose(self, session: Session, site_id: PathId, user_id: PathId,
                     data: JSONBody[ReportChoice]) -> ReportChoice:
        return await logic.choose_reports(session, site_id, user_id, data)


class MailController(Controller):
    """Emails the api asks for on behalf of a person (not of a site): written to the outbox, sent by the worker."""

    path = "/mail"
    guards = [internal_token_guard]
    dependencies = {"session": Provide(provide_session)}

    @post("/password-reset", status_code=202)
    async def password_reset(self, session: Session, data: JSONBody[PasswordResetMail]) -> None:
        message = mail.password_reset(data.recipient, data.link, data.valid_minutes)
        await session.run_sync(lambda sync: mail.enqueue(sync.connection(), message))
