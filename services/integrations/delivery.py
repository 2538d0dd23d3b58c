"""Sending the outbox: claim due deliveries, send one attempt, record it, schedule the next or give up.

Runs in Dramatiq workers (synchronous SQLAlchemy and httpx). A delivery is claimed with a lease (a random
token and an expiry): only the holder of the current token records the outcome, and a delivery whose worker
died mid-request (SIGKILL, power loss) is claimed again once its lease expires and sent with the same
``webhook-id``. Nothing is lost: the row stays ``pending`` until an attempt is recorded.

Outcomes: a 2xx succeeds; a 410 Gone disables the endpoint at once; anything else (another status, a
timeout, a refused destination) is retried after the next delay of the retry schedule, and after the last
attempt the delivery fails. An endpoint whose deliveries have failed for ``disable_after`` seconds in a row
is disabled and the site's owners are emailed.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import certifi
import httpx
from sqlalchemy import Connection, Engine, text

from app.core.settings import IntegrationsSettings
from services.integrations import egress, mail
from services.integrations.webhooks import render, sign_headers

logger = logging.getLogger("beacon.integrations")

CLAIM = text("""
UPDATE webhook_deliveries SET lease_token = md5(random()::text || clock_timestamp()::text),
       leased_until = now() + make_interval(secs => :lease)
WHERE id IN (SELECT id FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
               AND (leased_until IS NULL OR leased_until < now())
             ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id, lease_token""")

LOAD = text("""
SELECT d.msg_id, d.payload, d.attempts, d.event_type, e.id AS endpoint_id, e.url, e.format, e.secret, e.enabled
FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.id = :id AND d.lease_token = :token AND d.status = 'pending'""")


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    duration_ms: float
    body: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def claim_due(engine: Engine, settings: IntegrationsSettings, limit: int = 200) -> list[tuple[int, str]]:
    """Lease up to ``limit`` due deliveries; returns ``(delivery id, lease token)`` pairs to send."""
    with engine.begin() as conn:
        rows = conn.execute(CLAIM, {"lease": settings.lease, "limit": limit}).all()
    return [(int(row[0]), str(row[1])) for row in rows]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one (loading the CA bundle) costs ~30 ms, and the
    client is made anew for each attempt so that no connection is reused across destinations."""
    return ssl.create_default_context(cafile=certifi.where())


def post(destination: egress.Destination, body: bytes, headers: dict[str, str],
         settings: IntegrationsSettings) -> AttemptResult:
    """POST to the checked address (never re-resolving the host), no redirects, capped answer."""
    address = f"[{destination.address}]" if ":" in destination.address else destination.address
    original = httpx.URL(destination.url)
    url = original.copy_with(host=address.strip("[]"))
    default_port = 443 if original.scheme == "https" else 80
    host_header = destination.host if destination.port == default_port else f"{destination.host}:{destination.port}"
    started = time.perf_counter()
    timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=tls_context()) as client:
            request = client.build_request("POST", url, content=body, headers={**headers, "Host": host_header},
                                           extensions={"sni_hostname": destination.host})
            response = client.send(request, stream=True)
            # read_timeout bounds each read; a receiver trickling its answer a byte at a time would hold the
            # worker until the job's time limit, so the whole answer gets one budget too.
            deadline = started + settings.connect_timeout + settings.read_timeout
            try:
                captured = bytearray()
                for chunk in response.iter_raw():
                    captured += chunk
                    if len(captured) >= settings.response_capture:
                        break
                    if time.perf_counter() > deadline:
                        return AttemptResult(None, _ms(started), "", "timeout (the answer came too slowly)")
            finally:
                response.close()
    except httpx.TimeoutException:
        return AttemptResult(None, _ms(started), "", "timeout")
    except httpx.HTTPError as exc:
        return AttemptResult(None, _ms(started), "", f"connection failed ({type(exc).__name__})")
    text_body = bytes(captured[: settings.response_capture]).decode("utf-8", "replace")
    return AttemptResult(response.status_code, _ms(started), text_body, None)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def deliver(engine: Engine, settings: IntegrationsSettings, delivery_id: int, token: str) -> str:
    """Send one attempt of a leased delivery and record it; returns what happened (for logs and tests).

    Safe to run twice: a stale token (the lease expired and another worker holds it) does nothing.
    """
    with engine.connect() as conn:
        row = conn.execute(LOAD, {"id": delivery_id, "token": token}).mappings().first()
    if row is None:
        return "skipped"
    if not row["enabled"]:
        with engine.begin() as conn:
            conn.execute(text("UPDATE webhook_deliveries SET status = 'failed', finished_at = now(), "
                              "lease_token = NULL, leased_until = NULL WHERE id = :id AND lease_token = :t"),
                         {"id": delivery_id, "t": token})
        return "endpoint disabled"
    payload: dict[str, Any] = row["payload"]
    body = render(row["format"], payload)
    try:
        destination = egress.resolve(row["url"], allow_private=settings.allow_private)
    except egress.EgressError as exc:
        result = AttemptResult(None, 0.0, "", str(exc)[:200])
    else:
        started = time.perf_counter()
        try:
            result = post(destination, body, sign_headers(row["secret"], row["msg_id"], body), settings)
        except BaseException:
            # The job's time limit (or a shutdown) stopped a receiver that kept the attempt open: it counts as a
            # failed attempt, or the delivery would be leased and sent again forever without ever failing.
            with engine.begin() as conn:
                record(conn, settings, delivery_id, token, int(row["endpoint_id"]), int(row["attempts"]),
                       AttemptResult(None, _ms(started), "", "interrupted (the receiver kept the attempt open)"))
            raise
    with engine.begin() as conn:
        return record(conn, settings, delivery_id, token, int(row["endpoint_id"]), int(row["attempts"]), result)


def record(conn: Connection, settings: IntegrationsSettings, delivery_id: int, token: str, endpoint_id: int,
           attempts_before: int, result: AttemptResult) -> str:
    """Store the attempt and move the delivery (and its endpoint) to their next state."""
    conn.execute(text("INSERT INTO webhook_attempts (delivery_id, status_code, duration_ms, response_body, error) "
                      "VALUES (:d, :s, :ms, :b, :e)"),
                 {"d": delivery_id, "s": result.status_code, "ms": result.duration_ms,
                  "b": result.body.replace("\x00", ""), "e": result.error})
    attempts = attempts_before + 1
    delays = settings.retry_delays()
    common = {"id": delivery_id, "t": token, "n": attempts, "code": result.status_code}
    finish = ("UPDATE webhook_deliveries SET status = :status, attempts = :n, last_status_code = :code, "
              "finished_at = now(), lease_token = NULL, leased_until = NULL WHERE id = :id AND lease_token = :t")
    if result.ok:
        conn.execute(text(finish), {**common, "status": "succeeded"})
        conn.execute(text("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = :e"), {"e": endpoint_id})
        return "succeeded"
    if result.status_code == 410:
        conn.execute(text(finish), {**common, "status": "failed"})
        _disable(conn, endpoint_id, "the receiver answered 410 Gone")
        return "disabled"
    failing_since = conn.execute(text(
        "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()) WHERE id = :e "
        "RETURNING extract(epoch FROM now() - failing_since)"), {"e": endpoint_id}).scalar_one()
    if float(failing_since) >= settings.disable_after:
        conn.execute(text(finish), {**common, "status": "failed"})
        _disable(conn, endpoint_id, f"deliveries failed for {settings.disable_after / 86400:g} days in a row")
        return "disabled"
    if attempts >= len(delays):
        conn.execute(text(finish), {**common, "status": "failed"})
        return "failed"
    conn.execute(text("UPDATE webhook_deliveries SET attempts = :n, last_status_code = :code, "
                      "next_attempt_at = now() + make_interval(secs => :delay), lease_token = NULL, "
                      "leased_until = NULL WHERE id = :id AND lease_token = :t"),
                 {**common, "delay": delays[attempts]})
    return "retry"


def _disable(conn: Connection, endpoint_id: int, reason: str) -> None:
    """Disable an endpoint, fail what it still had pending, and email the site's owners."""
    row = conn.execute(text(
        "UPDATE webhook_endpoints e SET enabled = false, disabled_reason = :r, updated_at = now() "
        "FROM sites s WHERE e.id = :e AND s.id = e.site_id AND e.enabled RETURNING e.url, s.id, s.domain"),
        {"e": endpoint_id, "r": reason}).first()
    if row is None:
        return
    conn.execute(text("UPDATE webhook_deliveries SET status = 'failed', finished_at = now() "
                      "WHERE endpoint_id = :e AND status = 'pending' AND lease_token IS NULL"), {"e": endpoint_id})
    owners = [str(r[0]) for r in conn.execute(text(
        "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id "
        "WHERE m.site_id = :s AND m.role = 'owner'"), {"s": row[1]})]
    for owner in owners:
        mail.enqueue(conn, mail.endpoint_disabled(owner, str(row[2]), str(row[0]), reason))
    logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint_id, "reason": reason})


def purge_log(engine: Engine, settings: IntegrationsSettings, now: datetime | None = None) -> int:
    """Delete finished deliveries (and their attempts) older than the log's retention; returns how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.log_retention_days)
    with engine.begin() as conn:
        return int(conn.execute(text("DELETE FROM webhook_deliveries WHERE status <> 'pending' "
                                     "AND created_at < :c"), {"c": cutoff}).rowcount)


def dumps(value: Any) -> str:
    """JSON text for a ``CAST(:payload AS jsonb)`` parameter."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
