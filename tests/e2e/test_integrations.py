"""Integrations on the running stack, through Nginx: an endpoint made with the API, a signed test delivery, a
goal conversion sent by the Events API reaching the receiver as goal.completed, 100 deliveries surviving the
SIGKILL of every worker process under circusd, and the weekly report arriving at the SMTP server with the Stats
API's figures."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psutil
import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from app.core.db import make_engine
from tests.support.integrations import Receiver, body
from tests.support.polling import wait_until
from tests.support.stack import ADMIN_EMAIL, SITE, UA, Stack, watcher_pids

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
    test = wait_until(lambda: receiver.on("/e2e"), 30, "the test delivery")[0]
    assert "webhook.test" == Webhook(webhook["secret"]).verify(test.body, test.headers)["type"]

    time.sleep(3)  # the site's goal cursor starts at the first coalescing run that sees the endpoint
    with running.client() as client:
        sent = client.post("/api/event", headers={"User-Agent": UA, "Content-Type": "text/plain"},
                           content=json.dumps({"name": "Signup", "url": f"https://{SITE}/join", "domain": SITE}))
    assert 202 == sent.status_code
    sent_at = time.monotonic()
    goals = wait_until(lambda: [r for r in receiver.on("/e2e") if body(r)["type"] == "goal.completed"], 60,
                       "goal.completed")
    print(f"goal.completed arrived {time.monotonic() - sent_at:.1f} s after the event (interval 5 s)")
    data = Webhook(webhook["secret"]).verify(goals[0].body, goals[0].headers)["data"]
    assert [{"goal": "Signup", "count": 1}] == data["conversions"]


def worker_processes(stack: Stack) -> list[psutil.Process]:
    """Every process of the ``worker`` watcher, with any children they started."""
    found = []
    for pid in watcher_pids(stack, "worker"):
        try:
            process = psutil.Process(pid)
            found += [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def test_killing_every_worker_during_100_deliveries_loses_none(running: Stack, key: str,
                                                                receiver: Receiver) -> None:
    """100 test deliveries asked for through Nginx to a receiver that holds each first request; every worker
    process is SIGKILLed twice while they hold some. Each of the 100 webhook-ids arrives, every delivery ends
    ``succeeded``, and the only repeats carry an id already received (a receiver drops them by webhook-id)."""
    engine = make_engine(running.settings.database)
    held_at_kill = []
    try:
        with running.client(headers={"Authorization": f"Bearer {key}"}) as client:
            created = client.post(f"/api/v1/sites/{SITE}/webhooks", json={
                "url": receiver.url("/hang"), "event_types": ["webhook.test"], "description": "100 deliveries"})
            assert 201 == created.status_code, created.text
            webhook = created.json()
            ids = []
            for _ in range(100):
                sent = client.post(f"/api/v1/sites/{SITE}/webhooks/{webhook['id']}/test")
                assert 202 == sent.status_code, sent.text
                ids.append(sent.json()["webhook_id"])
        killed = 0
        for _ in range(2):
            # Workers hold requests the receiver has not answered: they die mid-delivery.
            seen = len(receiver.on("/hang"))
            wait_until(lambda seen=seen: len(receiver.on("/hang")) > seen, 60, "workers to be sending")
            held_at_kill.append(len(receiver.on("/hang")) - seen)
            processes = worker_processes(running)
            assert processes, "the worker watcher has processes"
            for process in processes:
                try:
                    os.kill(process.pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            old = {process.pid for process in processes}
            wait_until(lambda old=old: (pids := watcher_pids(running, "worker")) and not pids & old, 30,
                       "circusd to start the workers again")
        receiver.release.set()  # from now on the receiver answers at once

        def finished() -> bool:
            with engine.connect() as conn:
                return not conn.execute(text("SELECT 1 FROM webhook_deliveries WHERE endpoint_id = :e AND status "
                                             "= 'pending'"), {"e": webhook["id"]}).first()

        wait_until(finished, 240, "every delivery to finish")
        with engine.connect() as conn:
            statuses = [tuple(row) for row in conn.execute(text(
                "SELECT status, count(*) FROM webhook_deliveries WHERE endpoint_id = :e GROUP BY status"),
                {"e": webhook["id"]})]
    finally:
        receiver.release.set()
        engine.dispose()
    received = [r.headers["webhook-id"] for r in receiver.on("/hang")]
    print(f"100 deliveries, {killed} worker processes killed in 2 rounds while holding {held_at_kill} requests: "
          f"{len(received)} requests received, {len(received) - len(set(received))} repeats with the same id")
    assert [("succeeded", 100)] == statuses
    assert sorted(set(ids)) == sorted(set(received))
    assert 100 == len(set(ids))
    assert len(received) > 100, "a request held by a killed worker is sent again"


def next_monday(today: date) -> date:
    """The Monday after ``today`` (a week on, if today is a Monday): its weekly report covers today's week."""
    return today + timedelta(days=7 - today.weekday())


def test_weekly_report_arrives_by_smtp_with_the_stats_api_figures(running: Stack, key: str) -> None:
    """Pageviews sent through Nginx; the weekly report due next Monday 09:30 (queued with ``beacon reports send
    --at``) reaches the SMTP server, and its figures are what POST /api/v2/query answers through Nginx."""
    domain = "weekly-report.example"  # not "e2e": test_pages searches for that word and expects one site
    added = running.beacon("site", "add", domain, "--owner", ADMIN_EMAIL, "--exists-ok")
    assert 0 == added.returncode, added.stderr
    visits = [("Visitor/1", ["/", "/pricing"], "https://www.google.com/"), ("Visitor/2", ["/"], ""),
              ("Visitor/3", ["/docs"], "https://news.ycombinator.com/")]
    with running.client() as client:
        for agent, pages, referrer in visits:
            for page in pages:
                sent = client.post("/api/event", headers={"User-Agent": f"{UA} {agent}",
                                                          "Content-Type": "text/plain"},
                                   content=json.dumps({"name": "pageview", "url": f"https://{domain}{page}",
                                                       "domain": domain, "referrer": referrer}))
                assert 202 == sent.status_code, sent.text
    monday = next_monday(datetime.now(UTC).date())
    week = [(monday - timedelta(days=7)).isoformat(), (monday - timedelta(days=1)).isoformat()]

    def query(body: dict) -> list:
        with running.client(headers={"Authorization": f"Bearer {key}"}) as client:
            answer = client.post("/api/v2/query", json={"site_id": domain, "date_range": week, **body})
        assert 200 == answer.status_code, answer.text
        return list(answer.json()["results"])

    metrics = ["visitors", "pageviews", "bounce_rate", "visit_duration"]
    wait_until(lambda: query({"metrics": ["pageviews"]})[0]["metrics"] == [4], 30, "the pageviews to be counted")

    refused = running.beacon("reports", "send", "--at", "next monday")
    assert (1, True) == (refused.returncode, "--at" in refused.stderr), refused.stderr
    queued = running.beacon("reports", "send", "--at", f"{monday.isoformat()}T09:30:00+00:00")
    assert 0 == queued.returncode, queued.stderr

    def report() -> email.message.EmailMessage | None:
        for path in running.mail.messages():
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if domain in str(message["Subject"]):
                return message  # type: ignore[return-value]
        return None

    message = wait_until(report, 60, "the weekly report at the SMTP server")
    text_part = message.get_body(preferencelist=("plain",))
    assert text_part is not None
    body = text_part.get_content()
    figures = dict(zip(metrics, query({"metrics": metrics})[0]["metrics"], strict=True))
    pages = query({"metrics": ["visitors"], "dimensions": ["event:page"], "order_by": [["visitors", "desc"]],
                   "pagination": {"limit": 5}})
    sources = query({"metrics": ["visitors"], "dimensions": ["visit:source"], "order_by": [["visitors", "desc"]],
                     "pagination": {"limit": 5}})
    assert (ADMIN_EMAIL, f"Weekly report for {domain}: {week[0]} to {week[1]}") == (message["To"],
                                                                                    message["Subject"])
    expected_lines = [f"Visitors: {figures['visitors']} ", f"Pageviews: {figures['pageviews']} ",
                      f"Bounce rate: {figures['bounce_rate']}% ", f"Visit duration: {figures['visit_duration']} s "]
    expected_lines += [f"  {row['dimensions'][0]} — {row['metrics'][0]} visitors" for row in pages + sources]
    assert [] == [line for line in expected_lines if line not in body], body
    assert (3, 4) == (figures["visitors"], figures["pageviews"])
    assert "List-Unsubscribe=One-Click" == message["List-Unsubscribe-Post"]
