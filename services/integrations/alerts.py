"""Alert rules: evaluated every minute against the analytics service's figures, with a cool-down and a history.

Kinds and their ``params``:

- ``spike``: ``{"threshold": N}`` — fires when current visitors (the Stats API's realtime visitors: distinct
  visitors in the last 5 minutes) reach N. Message type ``traffic.spike``.
- ``drop``: ``{"threshold": N, "baseline": M}`` — fires when the last hour had at most N visitors while the
  same hour a week earlier had at least M. Message type ``traffic.drop``.
- ``goal``: ``{"goal": "<display name>", "threshold": N}`` — fires when the goal's conversions today (site
  time) reach N. Message type ``goal.threshold``.
- ``anomaly``: ``{"threshold": S, "metric": "visitors"|"pageviews"}`` — fires when the last complete hour (site
  time) of the metric scores at least S (in (0, 1], default 0.5) in the compute service's online detector
  (``POST /detect/hour``, which keeps the detector's state per site and metric). Message type
  ``traffic.anomaly``, carrying the detector's explanation in words. Evaluated once an hour by
  :func:`evaluate_anomalies`, not by the minute pass.

A rule that fired stays quiet for ``cooldown`` seconds (default 12 h). Each firing is a row of
``alert_firings`` written in the same transaction as its emails (to ``recipients``) and webhook deliveries (to
``endpoint_ids``, whatever they subscribe to), so an alert is never half-sent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from app.core.http import ServiceClient
from app.core.settings import Settings
from services.integrations import mail
from services.integrations.delivery import dumps
from services.integrations.facts import ask_analytics
from services.integrations.webhooks import ENQUEUE_FOR_ENDPOINTS, envelope, summary

logger = logging.getLogger("beacon.integrations")

EVALUATED = ("spike", "drop", "goal")
MESSAGE_TYPES = {"spike": "traffic.spike", "drop": "traffic.drop", "goal": "goal.threshold",
                 "anomaly": "traffic.anomaly"}

DUE_RULES = text("""
SELECT r.id, r.site_id, r.kind, r.params, s.domain FROM alert_rules r JOIN sites s ON s.id = r.site_id
WHERE r.enabled AND r.kind IN ('spike', 'drop', 'goal')
  AND (r.last_fired_at IS NULL OR r.last_fired_at + make_interval(secs => r.cooldown) <= :now)
ORDER BY r.id""")


DUE_ANOMALY_RULES = text("""
SELECT r.id, r.params, s.domain, s.timezone,
       (SELECT f.details ->> 'hour' FROM alert_firings f WHERE f.rule_id = r.id ORDER BY f.fired_at DESC LIMIT 1)
FROM alert_rules r JOIN sites s ON s.id = r.site_id
WHERE r.enabled AND r.kind = 'anomaly'
  AND (r.last_fired_at IS NULL OR r.last_fired_at + make_interval(secs => r.cooldown) <= :now)
ORDER BY r.id""")


@dataclass(frozen=True)
class Check:
    fires: bool
    value: float
    details: dict[str, Any]


async def realtime_visitors(settings: Settings, domain: str) -> int:
    client = ServiceClient(settings)
    try:
        return int(await client.json("analytics", "GET", "/v1/realtime-visitors", params={"site_id": domain}))
    finally:
        await client.aclose()


async def visitors_between(settings: Settings, domain: str, start: datetime, end: datetime) -> int:
    """Visitors in ``[start, end)`` (whole seconds; the Stats API's range ends on an inclusive second)."""
    answer = await ask_analytics(settings, {"site_id": domain, "metrics": ["visitors"], "date_range": [
        start.isoformat(), (end - timedelta(seconds=1)).isoformat()]})
    return int(answer["results"][0]["metrics"][0])


async def measure(settings: Settings, kind: str, params: dict[str, Any], domain: str, now: datetime) -> Check:
    """Whether a rule fires now, the value that decided it, and what the message says about it."""
    threshold = float(params.get("threshold", 0))
    if kind == "spike":
        current = await realtime_visitors(settings, domain)
        return Check(current >= threshold, current, {"current_visitors": current, "threshold": threshold})
    if kind == "drop":
        end = now.replace(microsecond=0)
        hour = timedelta(hours=1)
        visitors, baseline = await asyncio.gather(
            visitors_between(settings, domain, end - hour, end),
            visitors_between(settings, domain, end - hour - timedelta(days=7), end - timedelta(days=7)))
        fires = visitors <= threshold and baseline >= float(params.get("baseline", 0))
        return Check(fires, visitors, {"visitors": visitors, "threshold": threshold, "baseline_visitors": baseline,
                                       "baseline": params.get("baseline")})
    goal = str(params.get("goal", ""))
    answer = await ask_analytics(settings, {"site_id": domain, "metrics": ["events"], "date_range": "day",
                                            "filters": [["is", "event:goal", [goal]]]})
    count = int(answer["results"][0]["metrics"][0]) if answer.get("results") else 0
    return Check(count >= threshold, count, {"goal": goal, "count": count, "threshold": threshold})


def last_complete_hour(now: datetime, timezone: str) -> datetime:
    """The start of the last hour that has ended at ``now``, in the site's time zone (naive, local)."""
    local = now.astimezone(ZoneInfo(timezone)).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return local - timedelta(hours=1)


async def detect_hour(settings: Settings, params: dict[str, Any], domain: str, hour: datetime) -> Check:
    """Ask the compute service's ``POST /detect/hour`` about one hour (naive, site time) of a site's series.

    The compute service keeps the detector learnt so far for the site and metric, so this costs one update and a
    one-day analytics query (the 31 days up to the hour are replayed only when that state is missing).

    Raises:
        ServiceError / ServiceUnavailable: the compute service refused or failed (the rule is skipped).
    """
    threshold = float(params.get("threshold", 0.5))
    metric = str(params.get("metric", "visitors"))
    client = ServiceClient(settings)
    try:
        answer = await client.json("compute", "POST", "/detect/hour", json={
            "site_id": domain, "hour": hour.isoformat(), "metric": metric, "threshold": threshold})
    finally:
        await client.aclose()
    point = answer["point"]
    return Check(bool(point["anomaly"]), float(point["score"]), {
        "metric": metric, "hour": point["time"], "value": point["value"], "score": point["score"],
        "threshold": threshold, "expected": point["expected"], "expected_low": point["expected_low"],
        "expected_high": point["expected_high"], "explanation": point["explanation"]})


def fire(engine: Engine, settings: Settings, rule_id: int, check: Check, now: datetime) -> bool:
    """Record a firing and send its messages, unless another evaluation fired the rule meanwhile."""
    with engine.begin() as conn:
        rule = conn.execute(text(
            "SELECT r.site_id, r.kind, r.recipients, r.endpoint_ids, s.domain FROM alert_rules r "
            "JOIN sites s ON s.id = r.site_id WHERE r.id = :r AND r.enabled AND (r.last_fired_at IS NULL OR "
            "r.last_fired_at + make_interval(secs => r.cooldown) <= :now) FOR UPDATE OF r"),
            {"r": rule_id, "now": now}).first()
        if rule is None:
            return False
        site_id, kind, recipients, endpoint_ids, domain = rule
        dashboard = f"{settings.server.base_url}/sites/{domain}"
        data = {"site": domain, "dashboard_url": dashboard, "rule_id": rule_id, **check.details}
        payload = envelope(MESSAGE_TYPES[kind], data, now)
        conn.execute(text("INSERT INTO alert_firings (rule_id, fired_at, value, details) VALUES (:r, :t, :v, "
                          "CAST(:d AS jsonb))"), {"r": rule_id, "t": now, "v": check.value, "d": dumps(data)})
        conn.execute(text("UPDATE alert_rules SET last_fired_at = :t WHERE id = :r"), {"r": rule_id, "t": now})
        if endpoint_ids:
            conn.execute(ENQUEUE_FOR_ENDPOINTS, {"site_id": site_id, "endpoint_ids": list(endpoint_ids),
                                                 "event_type": MESSAGE_TYPES[kind], "payload": dumps(payload)})
        for recipient in recipients:
            mail.enqueue(conn, mail.alert(recipient, domain, summary(payload), dashboard))
    return True


def evaluate(engine: Engine, settings: Settings, now: datetime | None = None) -> int:
    """Evaluate every enabled rule out of its cool-down; returns how many fired. A failing rule is skipped."""
    moment = now or datetime.now(UTC)
    with engine.connect() as conn:
        rules = conn.execute(DUE_RULES, {"now": moment}).all()
    fired = 0
    for rule_id, _site_id, kind, params, domain in rules:
        try:
            check = asyncio.run(measure(settings, str(kind), dict(params), str(domain), moment))
            if check.fires:
                fired += fire(engine, settings, int(rule_id), check, moment)
        except Exception:
            logger.exception("alert rule failed", extra={"rule_id": rule_id})
    return fired


def evaluate_anomalies(engine: Engine, settings: Settings, now: datetime | None = None) -> int:
    """The hourly pass: every enabled ``anomaly`` rule out of its cool-down is checked against the last complete
    hour (site time), each hour at most once per rule; returns how many fired. A failing rule is skipped.

    The compute service keeps each site's and metric's detector state (in Redis) and advances it by the hours
    since its last check; a lost state is rebuilt from the 31 days before the hour.
    """
    moment = now or datetime.now(UTC)
    with engine.connect() as conn:
        rules = conn.execute(DUE_ANOMALY_RULES, {"now": moment}).all()
    fired = 0
    for rule_id, params, domain, timezone, last_hour in rules:
        try:
            hour = last_complete_hour(moment, str(timezone))
            if last_hour == f"{hour:%Y-%m-%d %H}:00:00":
                continue
            check = asyncio.run(detect_hour(settings, dict(params), str(domain), hour))
            if check.fires:
                fired += fire(engine, settings, int(rule_id), check, moment)
        except Exception:
            logger.exception("anomaly rule failed", extra={"rule_id": rule_id})
    return fired
