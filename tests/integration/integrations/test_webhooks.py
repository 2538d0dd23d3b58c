"""Webhooks through the api, the integrations service and real workers, to a real receiver on loopback."""

from __future__ import annotations

import time

import msgspec
import pytest
from standardwebhooks import Webhook

from app.domain.webhooks.schemas import WebhookTestEvent
from services.integrations.delivery import purge_log
from tests.support.integrations import (
    Receiver,
    Site,
    Stack,
    body,
    delivery_status,
)
from tests.support.polling import wait_until


def create(stack: Stack, site: Site, url: str, event_types: list[str] | None = None, **extra: object) -> dict:
    with stack.client() as client:
        response = client.post(f"/api/v1/sites/{site.domain}/webhooks",
                               json={"url": url, "event_types": event_types or ["webhook.test"], **extra})
    assert 201 == response.status_code, response.text
    return dict(response.json())


def send_test(stack: Stack, site: Site, webhook_id: int) -> dict:
    with stack.client() as client:
        response = client.post(f"/api/v1/sites/{site.domain}/webhooks/{webhook_id}/test")
    assert 202 == response.status_code, response.text
    return dict(response.json())


def finished(stack: Stack, delivery_id: int) -> str:
    return wait_until(lambda: (s := delivery_status(stack, delivery_id)) != "pending" and s, 60, "the delivery")


def test_test_delivery_is_signed_with_standard_webhooks(stack: Stack, site: Site, receiver: Receiver) -> None:
    """Create an endpoint, POST …/test: the receiver verifies the signature with standardwebhooks."""
    webhook = create(stack, site, receiver.url("/ok"))
    assert webhook["secret"].startswith("whsec_")
    delivery = send_test(stack, site, webhook["id"])
    received = wait_until(lambda: receiver.on("/ok"), 30, "the test delivery")
    verified = Webhook(webhook["secret"]).verify(received[0].body, received[0].headers)
    assert ("webhook.test", site.domain) == (verified["type"], verified["data"]["site"])
    assert delivery["webhook_id"] == received[0].headers["webhook-id"]
    msgspec.json.decode(received[0].body, type=WebhookTestEvent, strict=True)  # the published schema
    assert "succeeded" == finished(stack, delivery["id"])
    with stack.client() as client:
        log = client.get(f"/api/v1/sites/{site.domain}/webhooks/{webhook['id']}/deliveries").json()["deliveries"]
        listed = client.get(f"/api/v1/sites/{site.domain}/webhooks/{webhook['id']}").json()
    assert [(200, "received")] == [(a["status_code"], a["response_body"]) for a in log[0]["log"]]
    assert "secret" not in listed or listed["secret"] is None


def test_failures_are_retried_on_the_schedule_with_the_same_id(stack: Stack, site: Site, receiver: Receiver) -> None:
    """Two 500s, then a 200: three attempts, one webhook-id, each attempt in the log."""
    webhook = create(stack, site, receiver.url("/fail/2"))
    delivery = send_test(stack, site, webhook["id"])
    assert "succeeded" == finished(stack, delivery["id"])
    ids = {r.headers["webhook-id"] for r in receiver.on("/fail/2")}
    statuses = [row[0] for row in stack.sql("SELECT status_code FROM webhook_attempts WHERE delivery_id = :d "
                                            "ORDER BY id", d=delivery["id"])]
    assert ({delivery["webhook_id"]}, [500, 500, 200]) == (ids, statuses)


def test_gone_disables_the_endpoint_and_tells_the_owner(stack: Stack, site: Site, receiver: Receiver) -> None:
    """A 410 disables the endpoint at once (no retry) and queues an email to the site's owner."""
    webhook = create(stack, site, receiver.url("/gone"))
    delivery = send_test(stack, site, webhook["id"])
    assert "failed" == finished(stack, delivery["id"])
    enabled, reason = stack.sql("SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = :e",
                                e=webhook["id"])[0]
    emails = stack.sql("SELECT recipient, kind FROM emails")
    assert (False, "410") == (enabled, "410" if reason and "410" in reason else reason)
    assert 1 == len(receiver.on("/gone"))
    assert [("owner@hooks.example", "endpoint.disabled")] == [tuple(row) for row in emails]
    with stack.client() as client:
        again = client.post(f"/api/v1/sites/{site.domain}/webhooks/{webhook['id']}/test")
        enabled_again = client.patch(f"/api/v1/sites/{site.domain}/webhooks/{webhook['id']}", json={"enabled": True})
    assert (409, True, None) == (again.status_code, enabled_again.json()["enabled"],
                                 enabled_again.json()["disabled_reason"])


def test_redirects_are_not_followed(stack: Stack, site: Site, receiver: Receiver) -> None:
    """A 302 is a failed attempt; the Location is never requested."""
    webhook = create(stack, site, receiver.url("/redirect"))
    delivery = send_test(stack, site, webhook["id"])
    wait_until(lambda: stack.sql("SELECT 1 FROM webhook_attempts WHERE delivery_id = :d", d=delivery["id"]), 30,
               "an attempt")
    assert (302, []) == (stack.sql("SELECT status_code FROM webhook_attempts WHERE delivery_id = :d",
                                   d=delivery["id"])[0][0], receiver.on("/ok"))


def test_the_log_keeps_the_first_2_kb_of_an_answer(stack: Stack, site: Site, receiver: Receiver) -> None:
    """An answer of 5000 bytes is kept as its first 2048."""
    webhook = create(stack, site, receiver.url("/big"))
    delivery = send_test(stack, site, webhook["id"])
    finished(stack, delivery["id"])
    kept = stack.sql("SELECT response_body FROM webhook_attempts WHERE delivery_id = :d", d=delivery["id"])[0][0]
    assert "x" * 2048 == kept


@pytest.mark.parametrize("fmt", ["slack", "discord"])
def test_chat_formats(stack: Stack, site: Site, receiver: Receiver, fmt: str) -> None:
    """Slack gets blocks with a summary and a dashboard link; Discord gets an embed; both are signed."""
    webhook = create(stack, site, receiver.url("/ok"), format=fmt)
    send_test(stack, site, webhook["id"])
    received = wait_until(lambda: receiver.on("/ok"), 30, "the delivery")[0]
    Webhook(webhook["secret"]).verify(received.body, received.headers)
    sent = body(received)
    link = f"{stack.settings.server.base_url}/sites/{site.domain}"
    if fmt == "slack":
        assert site.domain in sent["text"]
        assert link in sent["blocks"][-1]["elements"][0]["text"]
    else:
        assert (link, True) == (sent["embeds"][0]["url"], site.domain in sent["embeds"][0]["description"])


def test_sigkill_mid_delivery_redelivers_with_the_same_id(stack: Stack, site: Site, receiver: Receiver) -> None:
    """The worker dies while the receiver holds its request: a new worker delivers it, same webhook-id."""
    webhook = create(stack, site, receiver.url("/hang"))
    delivery = send_test(stack, site, webhook["id"])
    assert receiver.hung.wait(30)
    stack.kill("worker")
    stack.start("worker", "worker")
    try:
        assert "succeeded" == finished(stack, delivery["id"])
    finally:
        receiver.release.set()
    ids = [r.headers["webhook-id"] for r in receiver.on("/hang")]
    assert [delivery["webhook_id"]] * 2 == ids


def test_killing_the_workers_during_100_deliveries_loses_none(stack: Stack, site: Site,
                                                              receiver: Receiver) -> None:
    """100 deliveries, the worker SIGKILLed twice while sending them: every one arrives."""
    webhook = create(stack, site, receiver.url("/ok"))
    ids = [send_test(stack, site, webhook["id"])["webhook_id"] for _ in range(100)]
    for _ in range(2):
        wait_until(lambda: receiver.on("/ok"), 30, "deliveries to start")
        stack.kill("worker")
        time.sleep(0.5)
        stack.start("worker", "worker")
    wait_until(lambda: not stack.sql("SELECT 1 FROM webhook_deliveries WHERE status = 'pending'"), 120,
               "every delivery")
    assert set(ids) == {r.headers["webhook-id"] for r in receiver.on("/ok")}
    assert [("succeeded", 100)] == [tuple(r) for r in stack.sql(
        "SELECT status, count(*) FROM webhook_deliveries GROUP BY status")]


def test_an_endpoint_failing_for_5_days_is_disabled(stack: Stack, site: Site, receiver: Receiver) -> None:
    """The first failure after 5 days of failures disables the endpoint and queues an email to the owner."""
    webhook = create(stack, site, receiver.url("/fail/100"))
    stack.sql("UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' WHERE id = :e",
              e=webhook["id"])
    delivery = send_test(stack, site, webhook["id"])
    assert "failed" == finished(stack, delivery["id"])
    reason = stack.sql("SELECT disabled_reason FROM webhook_endpoints WHERE id = :e", e=webhook["id"])[0][0]
    assert ("deliveries failed for 5 days in a row", 1) == (
        reason, stack.sql("SELECT count(*) FROM emails WHERE kind = 'endpoint.disabled'")[0][0])


def test_the_log_is_kept_30_days(stack: Stack, site: Site, receiver: Receiver) -> None:
    """Finished deliveries older than 30 days go with their attempts; newer and pending ones stay."""
    webhook = create(stack, site, receiver.url("/ok"))
    for age, status in (("31 days", "succeeded"), ("29 days", "failed")):
        stack.sql("INSERT INTO webhook_deliveries (msg_id, endpoint_id, site_id, event_type, payload, status, "
                  "created_at, next_attempt_at) VALUES ('msg_' || :a, :e, :s, 'webhook.test', '{}', :st, "
                  "now() - CAST(:a AS interval), now() + interval '1 day')", a=age, e=webhook["id"], s=site.id,
                  st=status)
    assert 1 == purge_log(stack.engine, stack.settings.integrations)
    assert [("29 days",)] == [(r[0].removeprefix("msg_"),) for r in stack.sql("SELECT msg_id FROM webhook_deliveries")]
