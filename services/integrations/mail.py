"""Email: the mail outbox, rendering (plain text and HTML), signed one-click unsubscribe links, sending.

Emails are rows of ``emails`` written in the transaction of their cause; workers send them through
``BEACON_SMTP_URL`` with ``aiosmtplib`` (``smtp://`` upgrades with STARTTLS when the server offers it,
``smtps://`` speaks TLS from the start; user and password in the URL log in). Reports carry
``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import Connection, Engine, text

from app.core.settings import IntegrationsSettings

logger = logging.getLogger("beacon.integrations")

MAIL_RETRY_DELAYS = (0.0, 30.0, 300.0, 1800.0, 7200.0)
"""Seconds before each attempt to hand an email to the SMTP server."""


@dataclass(frozen=True)
class Mail:
    """A rendered email, ready for the outbox."""

    kind: str
    recipient: str
    subject: str
    text_body: str
    html_body: str
    headers: dict[str, str] = field(default_factory=dict)
    dedup_key: str | None = None


def enqueue(conn: Connection, mail: Mail) -> int | None:
    """Write ``mail`` to the outbox in the caller's transaction; ``None`` if its dedup key was already used."""
    return conn.execute(text(
        "INSERT INTO emails (kind, recipient, subject, text_body, html_body, headers, dedup_key) "
        "VALUES (:k, :r, :s, :t, :h, CAST(:hd AS jsonb), :d) ON CONFLICT (dedup_key) DO NOTHING RETURNING id"),
        {"k": mail.kind, "r": mail.recipient, "s": mail.subject, "t": mail.text_body, "h": mail.html_body,
         "hd": json.dumps(mail.headers), "d": mail.dedup_key}).scalar()


def _page(title: str, paragraphs: list[str], footer: str = "") -> str:
    body = "".join(f"<p>{item}</p>" for item in paragraphs)
    return (f"<!doctype html><html><body style=\"font-family:sans-serif\"><h1>{html.escape(title)}</h1>{body}"
            f"<p style=\"color:#666;font-size:12px\">{footer}</p></body></html>")


def endpoint_disabled(recipient: str, domain: str, url: str, reason: str) -> Mail:
    """Told to a site's owners when one of its webhook endpoints is disabled."""
    subject = f"Beacon: a webhook endpoint of {domain} was disabled"
    line = f"The webhook endpoint {url} of {domain} was disabled: {reason}."
    return Mail("endpoint.disabled", recipient, subject,
                f"{line}\n\nEnable it again in the site's settings once the receiver works.\n",
                _page(subject, [html.escape(line), "Enable it again in the site's settings once the receiver works."]))


def alert(recipient: str, domain: str, summary: str, link: str) -> Mail:
    """An alert rule fired."""
    subject = f"Beacon alert: {summary}"
    return Mail("alert", recipient, subject[:300], f"{summary}\n\nDashboard: {link}\n",
                _page("Beacon alert", [html.escape(summary), f'<a href="{html.escape(link)}">Open the dashboard</a>']))


def password_reset(recipient: str, link: str, valid_minutes: int) -> Mail:
    """A one-time link that sets a new password for the account of ``recipient``."""
    subject = "Beacon: reset your password"
    lines = ["Someone (hopefully you) asked to reset the password of your Beacon account.",
             f"The link below sets a new password. It works once, for {valid_minutes} minutes."]
    tail = "If you did not ask for this, ignore this email: your password stays as it is."
    return Mail("password.reset", recipient, subject, "\n\n".join([*lines, link, tail]) + "\n",
                _page(subject, [*(html.escape(line) for line in lines),
                                f'<a href="{html.escape(link)}">Set a new password</a>', html.escape(tail)]))


# Unsubscribe tokens: "<site>.<user>.<kind>.<mac>", the MAC keyed with the instance's secret key.
def unsubscribe_token(secret_key: str, site_id: int, user_id: int, kind: str) -> str:
    message = f"{site_id}.{user_id}.{kind}"
    mac = hmac.new(secret_key.encode(), b"unsubscribe:" + message.encode(), hashlib.sha256).digest()[:18]
    return f"{message}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def read_unsubscribe_token(secret_key: str, token: str) -> tuple[int, int, str] | None:
    """``(site_id, user_id, kind)`` of a genuine token, else ``None``."""
    parts = token.split(".")
    if len(parts) != 4 or parts[2] not in ("weekly", "monthly"):
        return None
    try:
        site_id, user_id = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    expected = unsubscribe_token(secret_key, site_id, user_id, parts[2])
    return (site_id, user_id, parts[2]) if hmac.compare_digest(expected, token) else None


def build_message(row: dict[str, object], sender: str) -> EmailMessage:
    """The message of an outbox row, dated now (RFC 5322 requires ``Date``; relays need not add it)."""
    message = EmailMessage()
    message["Date"] = format_datetime(datetime.now(UTC).replace(microsecond=0))
    message["From"] = sender
    message["To"] = str(row["recipient"])
    message["Subject"] = str(row["subject"])
    message["Message-ID"] = make_msgid(domain="beacon.invalid")
    for name, value in dict(row["headers"] or {}).items():  # type: ignore[call-overload]
        message[name] = value
    message.set_content(str(row["text_body"]))
    message.add_alternative(str(row["html_body"]), subtype="html")
    return message


async def _send(message: EmailMessage, smtp_url: str) -> None:
    url = urlsplit(smtp_url)
    if url.scheme not in ("smtp", "smtps"):
        raise ValueError("BEACON_SMTP_URL must start with smtp:// or smtps://")
    await aiosmtplib.send(
        message, hostname=url.hostname or "localhost", port=url.port or (465 if url.scheme == "smtps" else 25),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        use_tls=url.scheme == "smtps", start_tls=None if url.scheme == "smtp" else False, timeout=30)


def send_due(engine: Engine, settings: IntegrationsSettings, limit: int = 50) -> int:
    """Send the outbox's due emails; returns how many were handed to the SMTP server."""
    if not settings.smtp_url:
        return 0
    with engine.begin() as conn:
        rows = [dict(row) for row in conn.execute(text(
            "UPDATE emails SET lease_token = md5(random()::text), leased_until = now() + interval '2 minutes' "
            "WHERE id IN (SELECT id FROM emails WHERE status = 'pending' AND next_attempt_at <= now() "
            "AND (leased_until IS NULL OR leased_until < now()) ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED) "
            "RETURNING *"), {"n": limit}).mappings()]
    sent = 0
    for row in rows:
        try:
            asyncio.run(_send(build_message(row, settings.mail_from), settings.smtp_url))
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            attempts = int(row["attempts"]) + 1
            done = attempts >= len(MAIL_RETRY_DELAYS)
            delay = 0.0 if done else MAIL_RETRY_DELAYS[attempts]
            with engine.begin() as conn:
                conn.execute(text(
                    "UPDATE emails SET attempts = :n, error = :e, status = :s, lease_token = NULL, "
                    "leased_until = NULL, next_attempt_at = now() + make_interval(secs => :d) WHERE id = :id"),
                    {"n": attempts, "e": str(exc)[:300], "s": "failed" if done else "pending", "d": delay,
                     "id": row["id"]})
            logger.warning("email not sent", extra={"email_id": row["id"], "error": str(exc)})
            continue
        with engine.begin() as conn:
            conn.execute(text("UPDATE emails SET status = 'sent', sent_at = now(), attempts = attempts + 1, "
                              "lease_token = NULL, leased_until = NULL WHERE id = :id"), {"id": row["id"]})
        sent += 1
    return sent
