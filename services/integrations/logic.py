"""The integrations service's logic over its tables: webhook endpoints, deliveries, unsubscribing.

Handlers call these with an ``AsyncSession`` in a transaction. Errors are ``app.core.errors`` client errors
whose message names the field, so the api can pass them on as they are.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, Conflict, NotFound
from app.core.integration_contracts import (
    AlertFiring,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    Attempt,
    Delivery,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
)
from app.core.settings import Settings
from services.integrations import egress, mail
from services.integrations.delivery import dumps
from services.integrations.models import EVENT_TYPES
from services.integrations.schemas import ReportChoice
from services.integrations.webhooks import ENQUEUE_FOR_ENDPOINTS, envelope, new_secret

ENDPOINT_COLUMNS = "id, url, description, format, event_types, enabled, disabled_reason, created_at"


def check_event_types(event_types: list[str]) -> list[str]:
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown:
        raise ClientError(f"event_types: unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    return sorted(set(event_types))


async def check_url(url: str, settings: Settings) -> str:
    """The URL if it is an allowed destination now; a 400 naming the reason otherwise."""
    try:
        destination = await asyncio.to_thread(egress.resolve, url,
                                              allow_private=settings.integrations.allow_private)
    except egress.EgressError as exc:
        raise ClientError(str(exc)) from None
    return destination.url


async def site_domain(session: AsyncSession, site_id: int) -> str:
    domain = (await session.execute(text("SELECT domain FROM sites WHERE id = :s"), {"s": site_id})).scalar()
    if domain is None:
        raise NotFound("site not found")
    return str(domain)


def _webhook(row: Any, secret: str | None = None) -> Webhook:
    return Webhook(id=row.id, url=row.url, description=row.description, format=row.format,
                   event_types=list(row.event_types), enabled=row.enabled, disabled_reason=row.disabled_reason,
                   created_at=row.created_at, secret=secret)


async def list_webhooks(session: AsyncSession, site_id: int) -> list[Webhook]:
    await site_domain(session, site_id)
    rows = await session.execute(text(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE site_id = :s "  # noqa: S608 - constants
                                      "ORDER BY id"), {"s": site_id})
    return [_webhook(row) for row in rows]


async def get_webhook(session: AsyncSession, site_id: int, webhook_id: int) -> Webhook:
    row = (await session.execute(text(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE site_id = :s "  # noqa: S608 - constants
                                      "AND id = :id"), {"s": site_id, "id": webhook_id})).first()
    if row is None:
        raise NotFound("webhook not found")
    return _webhook(row)


async def create_webhook(session: AsyncSession, settings: Settings, site_id: int, data: WebhookCreate) -> Webhook:
    await site_domain(session, site_id)
    event_types = check_event_types(data.event_types)
    url = await check_url(data.url, settings)
    # The count and the insert are serialised per site so two concurrent creations cannot pass the limit.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('beacon.webhooks'), CAST(:s AS int))"),
                          {"s": site_id % 2**31})
    count = (await session.execute(text("SELECT count(*) FROM webhook_endpoints WHERE site_id = :s"),
                                   {"s": site_id})).scalar_one()
    if count >= settings.integrations.max_endpoints:
        raise Conflict(f"a site may have at most {settings.integrations.max_endpoints} webhook endpoints")
    secret = new_secret()
    row = (await session.execute(text(
        "INSERT INTO webhook_endpoints (site_id, url, description, format, event_types, secret) "  # noqa: S608
        f"VALUES (:s, :u, :d, :f, :e, :k) RETURNING {ENDPOINT_COLUMNS}"),
        {"s": site_id, "u": url, "d": data.description, "f": data.format, "e": event_types, "k": secret})).one()
    return _webhook(row, secret)


async def update_webhook(session: AsyncSession, settings: Settings, site_id: int, webhook_id: int,
                         data: WebhookUpdate) -> Webhook:
    await get_webhook(session, site_id, webhook_id)
    changes: dict[str, Any] = {}
    if data.url is not msgspec.UNSET:
        changes["url"] = await check_url(data.url, settings)
    if data.event_types is not msgspec.UNSET:
        changes["event_types"] = check_event_types(data.event_types)
    if data.format is not msgspec.UNSET:
        changes["format"] = data.format
    if data.description is not msgspec.UNSET:
        changes["description"] = data.description
    if data.enabled is not msgspec.UNSET:
        changes["enabled"] = data.enabled
        if data.enabled:
            changes["disabled_reason"] = None
            changes["failing_since"] = None
    if changes:
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        await session.execute(text(f"UPDATE webhook_endpoints SET {assignments}, updated_at = now() "  # noqa: S608 - constants
                                   "WHERE id = :id AND site_id = :s"), {**changes, "id": webhook_id, "s": site_id})
    return await get_webhook(session, site_id, webhook_id)


async def delete_webhook(session: AsyncSession, site_id: int, webhook_id: int) -> None:
    result = await session.execute(text("DELETE FROM webhook_endpoints WHERE id = :id AND site_id = :s"),
                                   {"id": webhook_id, "s": site_id})
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("webhook not found")


async def send_test(session: AsyncSession, settings: Settings, site_id: int, webhook_id: int) -> Delivery:
    """Put a ``webhook.test`` delivery for one endpoint in the outbox (sent within a second)."""
    webhook = await get_webhook(session, site_id, webhook_id)
    if not webhook.enabled:
        raise Conflict("the webhook is disabled; enable it first")
    domain = await site_domain(session, site_id)
    payload = envelope("webhook.test", {"site": domain, "webhook_id": webhook_id,
                                        "dashboard_url": f"{settings.server.base_url}/sites/{domain}",
                                        "message": "Beacon webhook test"})
    delivery_id = (await session.execute(ENQUEUE_FOR_ENDPOINTS, {
        "site_id": site_id, "endpoint_ids": [webhook_id], "event_type": "webhook.test",
        "payload": dumps(payload)})).scalar_one()
    return await get_delivery(session, site_id, webhook_id, int(delivery_id))


DELIVERY_COLUMNS = ("id, msg_id, event_type, status, attempts, "
                    "CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at, last_status_code, "
                    "created_at, finished_at, payload")


async def _attempts(session: AsyncSession, delivery_ids: list[int]) -> dict[int, list[Attempt]]:
    found: dict[int, list[Attempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    rows = await session.execute(text(
        "SELECT delivery_id, attempted_at, status_code, duration_ms, response_body, error FROM webhook_attempts "
        "WHERE delivery_id = ANY (:ids) ORDER BY id"), {"ids": delivery_ids})
    for row in rows:
        found[row.delivery_id].append(Attempt(attempted_at=row.attempted_at, status_code=row.status_code,
                                              duration_ms=row.duration_ms, response_body=row.response_body,
                                              error=row.error))
    return found


def _delivery(row: Any, log: list[Attempt]) -> Delivery:
    return Delivery(id=row.id, webhook_id=row.msg_id, event_type=row.event_type, status=row.status,
                    attempts=row.attempts, next_attempt_at=row.next_attempt_at,
                    last_status_code=row.last_status_code, created_at=row.created_at, finished_at=row.finished_at,
                    payload=row.payload, log=log)


async def list_deliveries(session: AsyncSession, site_id: int, webhook_id: int, limit: int = 100) -> list[Delivery]:
    await get_webhook(session, site_id, webhook_id)
    rows = (await session.execute(text(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = :e "  # noqa: S608 - constants
                                       "ORDER BY id DESC LIMIT :n"), {"e": webhook_id, "n": limit})).all()
    logs = await _attempts(session, [row.id for row in rows])
    return [_delivery(row, logs[row.id]) for row in rows]


async def get_delivery(session: AsyncSession, site_id: int, webhook_id: int, delivery_id: int) -> Delivery:
    row = (await session.execute(text(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = :d "  # noqa: S608 - constants
                                      "AND endpoint_id = :e AND site_id = :s"),
                                 {"d": delivery_id, "e": webhook_id, "s": site_id})).first()
    if row is None:
        raise NotFound("delivery not found")
    return _delivery(row, (await _attempts(session, [row.id]))[row.id])


async def retry_delivery(session: AsyncSession, settings: Settings, site_id: int, webhook_id: int,
                         delivery_id: int) -> Delivery:
    """Send a finished delivery once more now, with the same ``webhook-id``."""
    webhook = await get_webhook(session, site_id, webhook_id)
    if not webhook.enabled:
        raise Conflict("the webhook is disabled; enable it first")
    delivery = await get_delivery(session, site_id, webhook_id, delivery_id)
    if delivery.status == "pending":
        raise Conflict("the delivery is still pending")
    # One more attempt: the delivery resumes at the schedule's last step.
    await session.execute(text(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), finished_at = NULL, "
        "attempts = :n WHERE id = :d"), {"d": delivery_id, "n": len(settings.integrations.retry_delays()) - 1})
    return await get_delivery(session, site_id, webhook_id, delivery_id)


async def unsubscribe(session: AsyncSession, settings: Settings, token: str) -> tuple[str, str]:
    """Turn off the report a signed token names; returns ``(site domain, kind)``."""
    found = mail.read_unsubscribe_token(settings.security.secret_key, token)
    if found is None:
        raise ClientError("token: not a valid unsubscribe link")
    site_id, user_id, kind = found
    domain = await site_domain(session, site_id)
    await session.execute(text(
        "INSERT INTO report_subscriptions (site_id, user_id, weekly, monthly) VALUES (:s, :u, true, false) "
        "ON CONFLICT (site_id, user_id) DO NOTHING"), {"s": site_id, "u": user_id})
    await session.execute(text(f"UPDATE report_subscriptions SET {kind} = false "  # kind: weekly or monthly  # noqa: S608 - constants
                               "WHERE site_id = :s AND user_id = :u"), {"s": site_id, "u": user_id})
    return domain, kind


RULE_COLUMNS = "id, kind, params, recipients, endpoint_ids, cooldown, enabled, last_fired_at, created_at"
RULE_PARAMS = {"spike": {"threshold": 1}, "drop": {"threshold": 0, "baseline": 1}, "goal": {"threshold": 1}}
"""Each kind's numeric parameters and their minimum."""


def _rule(row: Any) -> AlertRule:
    return AlertRule(id=row.id, kind=row.kind, params=row.params, recipients=list(row.recipients),
                     endpoint_ids=[int(i) for i in row.endpoint_ids], cooldown=row.cooldown, enabled=row.enabled,
                     last_fired_at=row.last_fired_at, created_at=row.created_at)


ANOMALY_METRICS = ("visitors", "pageviews")


def check_anomaly_params(params: dict[str, Any]) -> dict[str, Any]:
    """``threshold``: the detector's score in (0, 1] (default 0.5); ``metric``: visitors or pageviews."""
    unknown = sorted(set(params) - {"threshold", "metric"})
    if unknown:
        raise ClientError(f"params.{unknown[0]}: not a parameter of an anomaly rule")
    threshold = params.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise ClientError("params.threshold: an anomaly score above 0 and at most 1 (0.5 by default)")
    metric = params.get("metric", "visitors")
    if metric not in ANOMALY_METRICS:
        raise ClientError(f"params.metric: one of {', '.join(ANOMALY_METRICS)}")
    return {"threshold": float(threshold), "metric": metric}


def check_rule_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The rule's parameters, cleaned; a 400 naming ``params.<name>`` when one is missing, unknown or wrong."""
    if kind == "anomaly":
        return check_anomaly_params(params)
    expected = set(RULE_PARAMS[kind]) | ({"goal"} if kind == "goal" else set())
    unknown = sorted(set(params) - expected)
    if unknown:
        raise ClientError(f"params.{unknown[0]}: not a parameter of a {kind} rule")
    clean: dict[str, Any] = {}
    for name, minimum in RULE_PARAMS[kind].items():
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ClientError(f"params.{name}: required, a whole number of at least {minimum}")
        clean[name] = value
    if kind == "goal":
        goal = params.get("goal")
        if not isinstance(goal, str) or not goal.strip() or len(goal) > 120:
            raise ClientError("params.goal: required, the goal's display name")
        clean["goal"] = goal.strip()
    return clean


async def list_rules(session: AsyncSession, site_id: int) -> list[AlertRule]:
    await site_domain(session, site_id)
    rows = await session.execute(text(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE site_id = :s ORDER BY id"),  # noqa: S608
                                 {"s": site_id})
    return [_rule(row) for row in rows]


async def create_rule(session: AsyncSession, site_id: int, data: AlertRuleCreate) -> AlertRule:
    await site_domain(session, site_id)
    params = check_rule_params(data.kind, dict(data.params))
    if not data.recipients and not data.endpoint_ids:
        raise ClientError("recipients: give at least one recipient or webhook endpoint (endpoint_ids)")
    endpoint_ids = sorted(set(data.endpoint_ids))
    if endpoint_ids:
        found = {int(row[0]) for row in await session.execute(text(
            "SELECT id FROM webhook_endpoints WHERE site_id = :s AND id = ANY (:ids)"),
            {"s": site_id, "ids": endpoint_ids})}
        missing = [i for i in endpoint_ids if i not in found]
        if missing:
            raise ClientError(f"endpoint_ids: no webhook endpoint {missing[0]} on this site")
    row = (await session.execute(text(
        "INSERT INTO alert_rules (site_id, kind, params, recipients, endpoint_ids, cooldown) "  # noqa: S608
        f"VALUES (:s, :k, CAST(:p AS jsonb), :r, :e, :c) RETURNING {RULE_COLUMNS}"),
        {"s": site_id, "k": data.kind, "p": dumps(params), "r": sorted(set(data.recipients)), "e": endpoint_ids,
         "c": data.cooldown})).one()
    return _rule(row)


async def update_rule(session: AsyncSession, site_id: int, rule_id: int, data: AlertRuleUpdate) -> AlertRule:
    """Pause (``enabled: false``) or resume a rule; a paused rule is not evaluated and keeps its history."""
    statement = f"UPDATE alert_rules SET enabled = :e WHERE id = :r AND site_id = :s RETURNING {RULE_COLUMNS}"  # noqa: S608
    row = (await session.execute(text(statement), {"e": data.enabled, "r": rule_id, "s": site_id})).first()
    if row is None:
        raise NotFound("alert rule not found")
    return _rule(row)


async def delete_rule(session: AsyncSession, site_id: int, rule_id: int) -> None:
    result = await session.execute(text("DELETE FROM alert_rules WHERE id = :r AND site_id = :s"),
                                   {"r": rule_id, "s": site_id})
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("alert rule not found")


async def rule_history(session: AsyncSession, site_id: int, rule_id: int, limit: int = 100) -> list[AlertFiring]:
    exists = (await session.execute(text("SELECT 1 FROM alert_rules WHERE id = :r AND site_id = :s"),
                                    {"r": rule_id, "s": site_id})).first()
    if exists is None:
        raise NotFound("alert rule not found")
    rows = await session.execute(text("SELECT fired_at, value, details FROM alert_firings WHERE rule_id = :r "
                                      "ORDER BY id DESC LIMIT :n"), {"r": rule_id, "n": limit})
    return [AlertFiring(fired_at=row.fired_at, value=row.value, details=row.details) for row in rows]


async def report_choice(session: AsyncSession, site_id: int, user_id: int) -> ReportChoice:
    """A member's reports: what they chose, else the default (owners weekly, others none)."""
    row = (await session.execute(text(
        "SELECT coalesce(r.weekly, m.role = 'owner'), coalesce(r.monthly, false) FROM memberships m "
        "LEFT JOIN report_subscriptions r ON r.site_id = m.site_id AND r.user_id = m.user_id "
        "WHERE m.site_id = :s AND m.user_id = :u"), {"s": site_id, "u": user_id})).first()
    if row is None:
        raise NotFound("not a member of this site")
    return ReportChoice(weekly=bool(row[0]), monthly=bool(row[1]))


async def choose_reports(session: AsyncSession, site_id: int, user_id: int, choice: ReportChoice) -> ReportChoice:
    await report_choice(session, site_id, user_id)
    await session.execute(text(
        "INSERT INTO report_subscriptions (site_id, user_id, weekly, monthly) VALUES (:s, :u, :w, :m) "
        "ON CONFLICT (site_id, user_id) DO UPDATE SET weekly = :w, monthly = :m"),
        {"s": site_id, "u": user_id, "w": choice.weekly, "m": choice.monthly})
    return choice
