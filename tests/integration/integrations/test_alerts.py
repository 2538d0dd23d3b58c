"""Alert rules: spike, drop, goal threshold and anomaly, with cool-down and history; email and webhook."""

from __future__ import annotations

import email
import email.policy
import math
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from app.domain.webhooks.schemas import TrafficSpikeEvent
from app.mailsink import MailSink
from services.integrations import alerts
from tests.support.integrations import Receiver, Site, Stack, body
from tests.support.polling import wait_until


def visitors_at(stack: Stack, site: Site, count: int, ago: str = "0 seconds", name: str = "pageview") -> None:
    for n in range(count):
        stack.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                  "VALUES (:s, now() - CAST(:ago AS interval), :name, :v, :v, :d, '/')",
                  s=site.id, ago=ago, name=name, v=500 + n, d=site.domain)


def rule(stack: Stack, site: Site, **fields: object) -> dict:
    with stack.client() as client:
        response = client.post(f"/api/v1/sites/{site.domain}/alerts", json=fields)
    assert 201 == response.status_code, response.text
    return dict(response.json())


def history(stack: Stack, site: Site, rule_id: int) -> list[dict]:
    with stack.client() as client:
        return list(client.get(f"/api/v1/sites/{site.domain}/alerts/{rule_id}/history").json()["history"])


def test_spike_alert_fires_once_per_cooldown(stack: Stack, site: Site, receiver: Receiver,
                                             mail_sink: MailSink) -> None:
    """3 current visitors against a threshold of 2: one firing, an email and a signed traffic.spike; quiet
    during the cool-down, fires again after it."""
    with stack.client() as client:
        webhook = client.post(f"/api/v1/sites/{site.domain}/webhooks", json={
            "url": receiver.url("/alerts"), "event_types": ["traffic.spike"]}).json()
    made = rule(stack, site, kind="spike", params={"threshold": 2}, recipients=["ops@hooks.example"],
                endpoint_ids=[webhook["id"]], cooldown=3600)
    visitors_at(stack, site, 3)
    now = datetime.now(UTC)
    alerts.evaluate(stack.engine, stack.settings, now)
    alerts.evaluate(stack.engine, stack.settings, now + timedelta(minutes=1))
    fired = history(stack, site, made["id"])
    assert [(3.0, 3)] == [(f["value"], f["details"]["current_visitors"]) for f in fired]

    delivered = wait_until(lambda: receiver.on("/alerts"), 30, "traffic.spike")[0]
    assert "traffic.spike" == Webhook(webhook["secret"]).verify(delivered.body, delivered.headers)["type"]
    msgspec.json.decode(delivered.body, type=TrafficSpikeEvent, strict=True)  # the published schema
    message = email.message_from_bytes(wait_until(mail_sink.messages, 30, "the alert email")[0].read_bytes(),
                                       policy=email.policy.default)
    assert ("ops@hooks.example", True) == (message["To"], "traffic spike" in message["Subject"])

    alerts.evaluate(stack.engine, stack.settings, now + timedelta(seconds=3601))
    assert 2 == len(history(stack, site, made["id"]))


def test_drop_alert_compares_with_the_same_hour_last_week(stack: Stack, site: Site) -> None:
    """No visitor in the last hour, 2 in the same hour a week ago: a drop with threshold 0, baseline 2."""
    made = rule(stack, site, kind="drop", params={"threshold": 0, "baseline": 2}, recipients=["ops@hooks.example"])
    quiet = rule(stack, site, kind="drop", params={"threshold": 0, "baseline": 3}, recipients=["ops@hooks.example"])
    visitors_at(stack, site, 2, "7 days 30 minutes")
    alerts.evaluate(stack.engine, stack.settings)
    fired = history(stack, site, made["id"])
    assert [(0, 2)] == [(f["details"]["visitors"], f["details"]["baseline_visitors"]) for f in fired]
    assert [] == history(stack, site, quiet["id"])


def test_goal_threshold_alert(stack: Stack, site: Site, receiver: Receiver) -> None:
    """Two Signup conversions today against a threshold of 2: a goal.threshold delivery."""
    with stack.client() as client:
        webhook = client.post(f"/api/v1/sites/{site.domain}/webhooks", json={
            "url": receiver.url("/goal-alerts"), "event_types": ["goal.completed"]}).json()
    stack.sql("INSERT INTO goals (site_id, event_name, display_name) VALUES (:s, 'Signup', 'Signup')", s=site.id)
    rule(stack, site, kind="goal", params={"goal": "Signup", "threshold": 2}, endpoint_ids=[webhook["id"]])
    visitors_at(stack, site, 2, name="Signup")
    alerts.evaluate(stack.engine, stack.settings)
    delivered = wait_until(lambda: receiver.on("/goal-alerts"), 30, "goal.threshold")[0]
    assert ("goal.threshold", 2) == (body(delivered)["type"], body(delivered)["data"]["count"])


@pytest.mark.parametrize(("fields", "field"), [
    pytest.param({"kind": "anomaly", "params": {"threshold": 0}, "recipients": ["a@b.example"]},
                 "params.threshold", id="anomaly-zero-threshold"),
    pytest.param({"kind": "anomaly", "params": {"threshold": 1.5}, "recipients": ["a@b.example"]},
                 "params.threshold", id="anomaly-threshold-above-1"),
    pytest.param({"kind": "anomaly", "params": {"threshold": "high"}, "recipients": ["a@b.example"]},
                 "params.threshold", id="anomaly-threshold-not-a-number"),
    pytest.param({"kind": "anomaly", "params": {"metric": "bounce_rate"}, "recipients": ["a@b.example"]},
                 "params.metric", id="anomaly-unknown-metric"),
    pytest.param({"kind": "anomaly", "params": {"baseline": 3}, "recipients": ["a@b.example"]},
                 "params.baseline", id="anomaly-foreign-param"),
    pytest.param({"kind": "surge", "params": {"threshold": 1}, "recipients": ["a@b.example"]}, "kind",
                 id="unknown-kind"),
    pytest.param({"kind": "spike", "params": {}, "recipients": ["a@b.example"]}, "params.threshold",
                 id="missing-threshold"),
    pytest.param({"kind": "spike", "params": {"threshold": 0}, "recipients": ["a@b.example"]}, "params.threshold",
                 id="zero-threshold"),
    pytest.param({"kind": "drop", "params": {"threshold": 1}, "recipients": ["a@b.example"]}, "params.baseline",
                 id="drop-without-baseline"),
    pytest.param({"kind": "goal", "params": {"threshold": 1}, "recipients": ["a@b.example"]}, "params.goal",
                 id="goal-without-goal"),
    pytest.param({"kind": "spike", "params": {"threshold": 1}}, "recipients", id="nobody-to-tell"),
    pytest.param({"kind": "spike", "params": {"threshold": 1}, "recipients": ["not-an-email"]}, "recipients",
                 id="bad-email"),
    pytest.param({"kind": "spike", "params": {"threshold": 1}, "endpoint_ids": [999]}, "endpoint_ids",
                 id="foreign-endpoint"),
    pytest.param({"kind": "spike", "params": {"threshold": 1}, "recipients": ["a@b.example"], "cooldown": 5},
                 "cooldown", id="cooldown-too-short"),
])
def test_bad_rules_are_refused(stack: Stack, site: Site, fields: dict, field: str) -> None:
    with stack.client() as client:
        response = client.post(f"/api/v1/sites/{site.domain}/alerts", json=fields)
    assert (400, True) == (response.status_code, field in response.json()["error"]), response.text
    assert [] == stack.sql("SELECT id FROM alert_rules")


SPIKE = datetime(2026, 2, 20, 14, tzinfo=UTC)


def rhythm(stack: Stack, site: Site, days: int = 21) -> None:
    """Three weeks of hourly visitors with a daily rhythm, quieter at weekends, and 120 visitors at SPIKE."""
    start = SPIKE.replace(hour=0) - timedelta(days=days - 2)
    rows, visitor = [], 0
    for hour in range(days * 24):
        moment = start + timedelta(hours=hour)
        base = 6 + 5 * math.sin((moment.hour - 8) / 24 * 2 * math.pi)
        count = 120 if moment == SPIKE else max(0, round(base * (0.6 if moment.weekday() >= 5 else 1.0)))
        for k in range(count):
            visitor += 1
            rows.append({"s": site.id, "ts": moment + timedelta(minutes=k % 60), "v": visitor, "d": site.domain})
    with stack.engine.begin() as conn:
        conn.execute(text("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                          "VALUES (:s, :ts, 'pageview', :v, :v, :d, '/')"), rows)


def test_anomaly_alert_names_the_unusual_hour(stack: Stack, site: Site, receiver: Receiver,
                                              mail_sink: MailSink) -> None:
    """The compute service's detector, asked by the hourly pass: quiet on the ordinary hour before the spike,
    one firing for the 120-visitor hour with the explanation in the webhook and the email, not twice for the
    same hour (even out of cool-down), and quiet on the ordinary hour after it."""
    with stack.client() as client:
        webhook = client.post(f"/api/v1/sites/{site.domain}/webhooks", json={
            "url": receiver.url("/anomalies"), "event_types": ["traffic.spike"]}).json()
    made = rule(stack, site, kind="anomaly", params={"threshold": 0.5}, recipients=["ops@hooks.example"],
                endpoint_ids=[webhook["id"]], cooldown=60)
    assert ({"threshold": 0.5, "metric": "visitors"}, "anomaly") == (made["params"], made["kind"])
    rhythm(stack, site)
    alerts.evaluate(stack.engine, stack.settings, SPIKE + timedelta(hours=1, minutes=2))  # the minute pass
    assert [] == history(stack, site, made["id"])

    assert 0 == alerts.evaluate_anomalies(stack.engine, stack.settings, SPIKE + timedelta(minutes=2))
    assert 1 == alerts.evaluate_anomalies(stack.engine, stack.settings, SPIKE + timedelta(hours=1, minutes=2))
    assert 0 == alerts.evaluate_anomalies(stack.engine, stack.settings, SPIKE + timedelta(hours=1, minutes=40))
    assert 0 == alerts.evaluate_anomalies(stack.engine, stack.settings, SPIKE + timedelta(hours=2, minutes=2))
    fired = history(stack, site, made["id"])
    assert 1 == len(fired), fired
    details = fired[0]["details"]
    explanation = "visitors 120 at 14:00 on Fri 20 Feb, expected "
    assert ("2026-02-20 14:00:00", 120, True) == (details["hour"], details["value"],
                                                  details["explanation"].startswith(explanation)), details
    assert details["expected_high"] < 120 and fired[0]["value"] >= 0.5

    delivered = wait_until(lambda: receiver.on("/anomalies"), 30, "traffic.anomaly")[0]
    sent = Webhook(webhook["secret"]).verify(delivered.body, delivered.headers)
    assert ("traffic.anomaly", details["explanation"]) == (sent["type"], sent["data"]["explanation"])
    message = email.message_from_bytes(wait_until(mail_sink.messages, 30, "the alert email")[0].read_bytes(),
                                       policy=email.policy.default)
    assert explanation in message.get_body(("plain",)).get_content()


def test_anomaly_rule_on_a_quiet_series_stays_quiet(stack: Stack, site: Site) -> None:
    """No data at all (every hour 0): nothing is unusual, nothing fires."""
    made = rule(stack, site, kind="anomaly", params={"metric": "pageviews", "threshold": 0.9},
                recipients=["ops@hooks.example"])
    assert {"metric": "pageviews", "threshold": 0.9} == made["params"]
    assert 0 == alerts.evaluate_anomalies(stack.engine, stack.settings, SPIKE + timedelta(hours=1, minutes=2))
    assert [] == history(stack, site, made["id"])
