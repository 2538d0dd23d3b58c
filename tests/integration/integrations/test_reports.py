"""Weekly reports: the Stats API's figures, by email through a real SMTP server and by webhook; unsubscribe."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import httpx
import msgspec
from standardwebhooks import Webhook

from app.domain.webhooks.schemas import ReportEvent
from app.mailsink import MailSink
from services.integrations import reports
from tests.support.integrations import Receiver, Site, Stack
from tests.support.polling import wait_until

MONDAY = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
"""A Monday after 09:00 UTC: the report covers 2026-11-16 to 2026-11-22, compared with the week before."""

VISITS = [  # (day, visitor, pages, source, seconds)
    ("2026-11-16", 1, ["/", "/pricing"], "Google", 120),
    ("2026-11-17", 2, ["/"], "Google", 0),
    ("2026-11-18", 3, ["/docs"], "Twitter", 0),
    ("2026-11-21", 4, ["/pricing", "/signup", "/"], "", 300),
    ("2026-11-10", 5, ["/"], "Google", 0),
    ("2026-11-12", 6, ["/pricing"], "", 30),
]


def visit(stack: Stack, site: Site, day: str, visitor: int, pages: list[str], source: str, seconds: int) -> None:
    start = f"{day}T12:00:00+00:00"
    for n, page in enumerate(pages):
        stack.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                  "referrer_source) VALUES (:s, CAST(:t AS timestamptz) + make_interval(secs => :o), 'pageview', "
                  ":v, :v, :d, :p, :r)", s=site.id, t=start, o=n * seconds / max(len(pages) - 1, 1), v=visitor,
                  d=site.domain, p=page, r=source)
    # The visit (sessions row) is folded from these events by PostgreSQL's trigger (migration 0010).


def stats(stack: Stack, query: dict) -> list:
    with stack.client() as client:
        response = client.post("/api/v2/query", json=query)
    assert 200 == response.status_code, response.text
    return list(response.json()["results"])


def test_weekly_report_has_the_stats_api_figures(stack: Stack, site: Site, receiver: Receiver,
                                                  mail_sink: MailSink) -> None:
    """The email and the report.weekly webhook carry exactly what POST /api/v2/query answers; sent once."""
    for item in VISITS:
        visit(stack, site, *item)
    with stack.client() as client:
        webhook = client.post(f"/api/v1/sites/{site.domain}/webhooks", json={
            "url": receiver.url("/reports"), "event_types": ["report.weekly"]}).json()
    reports.send_reports(stack.engine, stack.settings, MONDAY)
    reports.send_reports(stack.engine, stack.settings, MONDAY)  # idempotent

    received = wait_until(lambda: receiver.on("/reports"), 30, "the report.weekly delivery")
    data = Webhook(webhook["secret"]).verify(received[0].body, received[0].headers)["data"]
    msgspec.json.decode(received[0].body, type=ReportEvent, strict=True)  # the published schema
    week, before = ["2026-11-16", "2026-11-22"], ["2026-11-09", "2026-11-15"]
    metrics = ["visitors", "pageviews", "bounce_rate", "visit_duration"]
    expected = dict(zip(metrics, stats(stack, {"site_id": site.domain, "metrics": metrics,
                                               "date_range": week})[0]["metrics"], strict=True))
    previous = dict(zip(metrics, stats(stack, {"site_id": site.domain, "metrics": metrics,
                                               "date_range": before})[0]["metrics"], strict=True))
    pages = stats(stack, {"site_id": site.domain, "metrics": ["visitors"], "dimensions": ["event:page"],
                          "date_range": week, "order_by": [["visitors", "desc"]], "pagination": {"limit": 5}})
    sources = stats(stack, {"site_id": site.domain, "metrics": ["visitors"], "dimensions": ["visit:source"],
                            "date_range": week, "order_by": [["visitors", "desc"]], "pagination": {"limit": 5}})
    assert (expected, previous) == (data["metrics"], data["previous"])
    assert [{"page": r["dimensions"][0], "visitors": r["metrics"][0]} for r in pages] == data["top_pages"]
    assert [{"source": r["dimensions"][0], "visitors": r["metrics"][0]} for r in sources] == data["top_sources"]
    assert 4 == expected["visitors"]

    message = email.message_from_bytes(wait_until(mail_sink.messages, 30, "the report email")[0].read_bytes(),
                                       policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "owner@hooks.example" == message["To"]
    assert f"Visitors: {expected['visitors']} " in text
    assert f"Pageviews: {expected['pageviews']} " in text
    assert f"  {pages[0]['dimensions'][0]} — {pages[0]['metrics'][0]} visitors" in text
    assert message.get_body(preferencelist=("html",)) is not None
    assert "List-Unsubscribe=One-Click" == message["List-Unsubscribe-Post"]
    assert 1 == len(mail_sink.messages())
    assert 1 == len(receiver.on("/reports"))

    # One click (RFC 8058): a POST to the List-Unsubscribe URL, no cookie, no form token.
    url = str(message["List-Unsubscribe"]).strip("<>")
    assert 200 == httpx.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=15).status_code
    assert [(False,)] == [tuple(r) for r in stack.sql("SELECT weekly FROM report_subscriptions")]
    assert 400 == httpx.post(url[:-3] + "xyz", timeout=15).status_code
    for path in mail_sink.messages():
        path.unlink()
    reports.send_reports(stack.engine, stack.settings, datetime(2026, 11, 30, 10, tzinfo=UTC))
    assert [] == stack.sql("SELECT id FROM emails WHERE dedup_key LIKE :k", k="report.weekly:%:2026-11-23")
    wait_until(lambda: len(receiver.on("/reports")) == 2, 30, "the next week's report.weekly (still subscribed)")
