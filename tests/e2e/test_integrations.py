"""Webhooks on the running stack, through Nginx: an endpoint made with the API, a signed test delivery, and a
goal conversion sent by the Events API reaching the receiver as goal.completed."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from app.core.db import make_engine
from tests.e2e.conftest import ADMIN_EMAIL, SITE, Stack
from tests.e2e.test_stack import UA
from tests.integration.integrations.conftest import Receiver, body, wait_for

KEY = "bk_e2e_integrations_key_0123456789"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def key(running: Stack) -> str:
    """A sites:write key of the admin, who owns the e2e site."""
    engine = make_engine(running.settings.database)
    with engine.begin() as conn:
        user_id = conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": ADMIN_EMAIL}).scalar_one()
        site_id = conn.execute(text("SELECT id FROM sites WHERE domain = :d"), {"d": SITE}).scalar_one()
        conn.execute(text("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, 'owner') "
                          "ON CONFLICT (site_id, user_id) DO UPDATE SET role = 'owner'"), {"s": site_id, "u": user_id})
        conn.execute(text("INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes) VALUES "
                          "(:u, 'e2e-integrations', 'bk_', :h, ARRAY['sites:write', 'stats:read']) "
                          "ON CONFLICT DO NOTHING"), {"u": user_id, "h": hashlib.sha256(KEY.encode()).digest()})
    engine.dispose()
    return KEY


def test_webhook_test_and_goal_conversion_through_nginx(running: Stack, key: str, receiver: Receiver) -> None:
    """POST …/test reaches a loopback receiver that verifies it with standardwebhooks; a Signup event sent to
    /api/event reaches it as goal.completed within the coalescing interval (5 s here) plus a few seconds."""
    auth = {"Authorization": f"Bearer {key}"}
    with running.client(headers=auth) as client:
        goal = client.put("/api/v1/sites/goals", json={"site_id": SITE, "goal_type": "event", "event_name": "Signup"})
        assert 200 == goal.status_code, goal.text
        created = client.post(f"/api/v1/sites/{SITE}/webhooks", json={
            "url": receiver.url("/e2e"), "event_types": ["webhook.test", "goal.completed"]})
        assert 201 == created.status_code, created.text
        webhook = created.json()
        assert 202 == client.post(f"/api/v1/sites/{SITE}/webhooks/{webhook['id']}/test").status_code
    test = wait_for(lambda: receiver.on("/e2e"), 30, "the test delivery")[0]
    assert "webhook.test" == Webhook(webhook["secret"]).verify(test.body, test.headers)["type"]

    time.sleep(3)  # the site's goal cursor starts at the first coalescing run that sees the endpoint
    with running.client() as client:
        sent = client.post("/api/event", headers={"User-Agent": UA, "Content-Type": "text/plain"},
                           content=json.dumps({"name": "Signup", "url": f"https://{SITE}/join", "domain": SITE}))
    assert 202 == sent.status_code
    sent_at = time.monotonic()
    goals = wait_for(lambda: [r for r in receiver.on("/e2e") if body(r)["type"] == "goal.completed"], 60,
                     "goal.completed")
    print(f"goal.completed arrived {time.monotonic() - sent_at:.1f} s after the event (interval 5 s)")
    data = Webhook(webhook["secret"]).verify(goals[0].body, goals[0].headers)["data"]
    assert [{"goal": "Signup", "count": 1}] == data["conversions"]
