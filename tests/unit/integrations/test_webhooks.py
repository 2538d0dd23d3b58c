"""Message bodies and signatures, checked with the standardwebhooks package as a receiver would."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.core.errors import ConfigError
from app.core.settings import RETRY_SCHEDULE, IntegrationsSettings, load_settings
from services.integrations.webhooks import envelope, new_secret, render, sign_headers


def test_signature_verifies_and_a_changed_body_does_not() -> None:
    secret = new_secret()
    body = render("generic", envelope("webhook.test", {"site": "a.example"}))
    headers = sign_headers(secret, "msg_1", body)
    assert "webhook.test" == Webhook(secret).verify(body, headers)["type"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"a.example", b"b.example"), headers)


def test_generic_body_is_the_envelope() -> None:
    moment = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    payload = envelope("site.first_event", {"site": "a.example"}, moment)
    assert {"type": "site.first_event", "timestamp": "2026-11-29T09:00:00Z",
            "data": {"site": "a.example"}} == json.loads(render("generic", payload))


def test_goal_summary_lists_each_conversion() -> None:
    payload = envelope("goal.completed", {"site": "a.example", "conversions": [
        {"goal": "Signup", "count": 2}, {"goal": "Visit /pricing", "count": 1}]})
    assert "a.example: 3 goal conversion(s) — Signup x2, Visit /pricing x1." == json.loads(
        render("slack", payload))["text"]


def test_retry_schedule_is_the_published_one_and_scales() -> None:
    assert (0, 5, 300, 1800, 7200, 18000, 36000, 36000) == RETRY_SCHEDULE
    assert (0, 0.005, 0.3) == IntegrationsSettings(retry_scale=0.001).retry_delays()[:3]


def test_settings_read_the_environment() -> None:
    base = {"BEACON_DATABASE_URL": "postgresql://u@h/d", "BEACON_REDIS_URL": "redis://h", "BEACON_SECRET_KEY": "s",
            "BEACON_INTERNAL_TOKEN": "t", "BEACON_ENV": "development"}
    settings = load_settings({**base, "BEACON_WEBHOOKS_ALLOW_PRIVATE": "1", "BEACON_WEBHOOKS_RETRY_SCALE": "0.5"})
    assert (True, 0.5, 20) == (settings.integrations.allow_private, settings.integrations.retry_scale,
                               settings.integrations.max_endpoints)

    with pytest.raises(ConfigError, match="BEACON_WEBHOOKS_LEASE"):
        load_settings({**base, "BEACON_WEBHOOKS_LEASE": "-1"})
