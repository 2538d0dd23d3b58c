"""Weekly and monthly reports: figures from the Stats API (asked of the analytics service), an email per
subscribed member and a ``report.weekly``/``report.monthly`` message per subscribed webhook endpoint.

A weekly report covers the last full week (Monday to Sunday) and goes out on Monday from 09:00 in the site's
time zone; a monthly one covers the last full month and goes out on the 1st from 09:00. The job runs hourly
and is idempotent: each email has a dedup key and each webhook message a fixed ``webhook-id`` per endpoint
and period, so a second run sends nothing twice.

Who gets the email: the site's owners unless they unsubscribed, and any member who subscribed
(``report_subscriptions``).

Figures are exactly the Stats API's (``POST /api/v2/query``) for the same date range: ``visitors``,
``pageviews``, ``bounce_rate`` (percent) and ``visit_duration`` (seconds), the same for the period before,
their change (percent for counts and duration, percentage points for the bounce rate, ``None`` when the
previous figure is 0), and the top 5 pages (``event:page``) and sources (``visit:source``) by visitors.
"""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from app.core.settings import Settings
from services.integrations import mail
from services.integrations.delivery import dumps
from services.integrations.facts import ask_analytics
from services.integrations.webhooks import envelope

logger = logging.getLogger("beacon.integrations")

METRICS = ("visitors", "pageviews", "bounce_rate", "visit_duration")
SEND_HOUR = 9

ENQUEUE_REPORT = text("""
INSERT INTO webhook_deliveries (msg_id, endpoint_id, site_id, event_type, payload)
SELECT 'msg_' || CAST(:kind AS varchar) || '_' || id || '_' || CAST(:period AS varchar), id, site_id,
       CAST(:event_type AS varchar), CAST(:payload AS jsonb)
FROM webhook_endpoints
WHERE site_id = :site_id AND enabled AND CAST(:event_type AS varchar) = ANY (event_types)
ON CONFLICT (msg_id) DO NOTHING
RETURNING id""")

RECIPIENTS = text("""
SELECT u.id, u.email FROM memberships m JOIN users u ON u.id = m.user_id
LEFT JOIN report_subscriptions r ON r.site_id = m.site_id AND r.user_id = m.user_id
WHERE m.site_id = :s AND CASE WHEN :kind = 'weekly' THEN coalesce(r.weekly, m.role = 'owner')
                              ELSE coalesce(r.monthly, false) END
ORDER BY u.id""")


def periods(kind: str, today: date) -> tuple[tuple[date, date], tuple[date, date]]:
    """The last full week or month before ``today`` and the one before it, as inclusive date pairs."""
    if kind == "weekly":
        start = today - timedelta(days=today.weekday() + 7)
        return (start, start + timedelta(days=6)), (start - timedelta(days=7), start - timedelta(days=1))
    end = today.replace(day=1) - timedelta(days=1)
    start = end.replace(day=1)
    previous_end = start - timedelta(days=1)
    return (start, end), (previous_end.replace(day=1), previous_end)


def due(kind: str, local: datetime) -> bool:
    """Whether the report of ``kind`` goes out at this local time."""
    if local.hour < SEND_HOUR:
        return False
    return local.weekday() == 0 if kind == "weekly" else local.day == 1


def _change(metric: str, now: float | None, before: float | None) -> float | None:
    if now is None or before is None:
        return None
    if metric == "bounce_rate":
        return round(now - before, 1)
    return None if before == 0 else round((now - before) / before * 100, 1)


async def _figures(settings: Settings, domain: str, current: tuple[date, date],
                   previous: tuple[date, date]) -> dict[str, Any]:
    def dates(pair: tuple[date, date]) -> list[str]:
        return [pair[0].isoformat(), pair[1].isoformat()]

    def aggregate(pair: tuple[date, date]) -> dict[str, Any]:
        return {"site_id": domain, "metrics": list(METRICS), "date_range": dates(pair)}

    def top(dimension: str) -> dict[str, Any]:
        return {"site_id": domain, "metrics": ["visitors"], "dimensions": [dimension], "date_range": dates(current),
                "order_by": [["visitors", "desc"]], "pagination": {"limit": 5}}

    now, before, pages, sources = await asyncio.gather(
        ask_analytics(settings, aggregate(current)), ask_analytics(settings, aggregate(previous)),
        ask_analytics(settings, top("event:page")), ask_analytics(settings, top("visit:source")))
    metrics = dict(zip(METRICS, now["results"][0]["metrics"], strict=True))
    earlier = dict(zip(METRICS, before["results"][0]["metrics"], strict=True))
    return {
        "period": {"from": current[0].isoformat(), "to": current[1].isoformat()},
        "previous_period": {"from": previous[0].isoformat(), "to": previous[1].isoformat()},
        "metrics": metrics,
        "previous": earlier,
        "change": {name: _change(name, metrics[name], earlier[name]) for name in METRICS},
        "top_pages": [{"page": r["dimensions"][0], "visitors": r["metrics"][0]} for r in pages["results"]],
        "top_sources": [{"source": r["dimensions"][0], "visitors": r["metrics"][0]} for r in sources["results"]],
    }


def figures(settings: Settings, domain: str, current: tuple[date, date], previous: tuple[date, date]) -> dict[str, Any]:
    """The report's figures (see the module's docstring), from four Stats API queries."""
    return asyncio.run(_figures(settings, domain, current, previous))


def _signed(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:+g}{unit}"


def render(settings: Settings, kind: str, domain: str, data: dict[str, Any], recipient: str,
           unsubscribe_url: str) -> mail.Mail:
    """The report email: plain text and HTML, with one-click unsubscribe headers (RFC 8058)."""
    word = "Weekly" if kind == "weekly" else "Monthly"
    period = f"{data['period']['from']} to {data['period']['to']}"
    metrics, change = data["metrics"], data["change"]
    rows = [("Visitors", f"{metrics['visitors']}", _signed(change["visitors"], "%")),
            ("Pageviews", f"{metrics['pageviews']}", _signed(change["pageviews"], "%")),
            ("Bounce rate", f"{metrics['bounce_rate']}%", _signed(change["bounce_rate"], " pt")),
            ("Visit duration", f"{metrics['visit_duration']} s", _signed(change["visit_duration"], "%"))]
    pages = [(item["page"], item["visitors"]) for item in data["top_pages"]]
    sources = [(item["source"], item["visitors"]) for item in data["top_sources"]]
    dashboard = f"{settings.server.base_url}/sites/{domain}"
    lines = [f"{word} report for {domain}, {period}", ""]
    lines += [f"{name}: {value} ({delta} vs the period before)" for name, value, delta in rows]
    lines += ["", "Top pages:"] + [f"  {page} — {n} visitors" for page, n in pages]
    lines += ["", "Top sources:"] + [f"  {source} — {n} visitors" for source, n in sources]
    lines += ["", f"Dashboard: {dashboard}", f"Choose your reports: {dashboard}/reports",
              f"Unsubscribe: {unsubscribe_url}"]

    def table(items: list[tuple[str, Any]]) -> str:
        return "".join(f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>" for a, b in items)

    body = (f"<h1>{word} report for {html.escape(domain)}</h1><p>{html.escape(period)}</p><table>"
            + "".join(f"<tr><th>{n}</th><td>{html.escape(v)}</td><td>{html.escape(d)}</td></tr>" for n, v, d in rows)
            + f"</table><h2>Top pages</h2><table>{table(pages)}</table>"
            + f"<h2>Top sources</h2><table>{table(sources)}</table>"
            + f'<p><a href="{html.escape(dashboard)}">Open the dashboard</a> · '
            + f'<a href="{html.escape(unsubscribe_url)}">Unsubscribe</a></p>')
    page = f"<!doctype html><html><body style=\"font-family:sans-serif\">{body}</body></html>"
    return mail.Mail(f"report.{kind}", recipient, f"{word} report for {domain}: {period}", "\n".join(lines) + "\n",
                     page, {"List-Unsubscribe": f"<{unsubscribe_url}>",
                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


def send_site_report(engine: Engine, settings: Settings, kind: str, site_id: int, domain: str, today: date) -> int:
    """Queue the site's report of ``kind`` for the period before ``today``; returns emails and deliveries made."""
    current, previous = periods(kind, today)
    data = figures(settings, domain, current, previous)
    made = 0
    with engine.begin() as conn:
        made += _queue_emails(conn, settings, kind, site_id, domain, current[0], data)
        payload = envelope(f"report.{kind}", {"site": domain, "dashboard_url": f"{settings.server.base_url}/sites/"
                                              f"{domain}", **data})
        made += len(conn.execute(ENQUEUE_REPORT, {
            "kind": kind, "period": current[0].strftime("%Y%m%d"), "event_type": f"report.{kind}",
            "payload": dumps(payload), "site_id": site_id}).all())
    return made


def _queue_emails(conn: Connection, settings: Settings, kind: str, site_id: int, domain: str, start: date,
                  data: dict[str, Any]) -> int:
    made = 0
    for user_id, email in conn.execute(RECIPIENTS, {"s": site_id, "kind": kind}).all():
        token = mail.unsubscribe_token(settings.security.secret_key, site_id, int(user_id), kind)
        message = render(settings, kind, domain, data, str(email),
                         f"{settings.server.base_url}/api/v1/unsubscribe/{token}")
        message = mail.Mail(**{**vars(message), "dedup_key": f"report.{kind}:{site_id}:{user_id}:{start}"})
        made += mail.enqueue(conn, message) is not None
    return made


def send_reports(engine: Engine, settings: Settings, now: datetime | None = None) -> int:
    """Every site whose local time makes a report due; a site that fails is tried again next hour."""
    moment = now or datetime.now(UTC)
    with engine.connect() as conn:
        sites = conn.execute(text("SELECT id, domain, timezone FROM sites ORDER BY id")).all()
    made = 0
    for site_id, domain, tz in sites:
        local = moment.astimezone(ZoneInfo(str(tz)))
        for kind in ("weekly", "monthly"):
            if due(kind, local):
                try:
                    made += send_site_report(engine, settings, kind, int(site_id), str(domain), local.date())
                except Exception:
                    logger.exception("report failed", extra={"site_id": site_id, "kind": kind})
    return made
