"""The email message handed to the SMTP server (services/integrations/mail.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from services.integrations.mail import build_message


def test_message_carries_the_headers_rfc_5322_requires() -> None:
    """RFC 5322 §3.6: every message has an origination date (``Date``) and a ``From``; SMTP relays that do not
    add a missing ``Date`` pass the message on without one, and spam filters count that against it."""
    before = datetime.now(UTC).replace(microsecond=0)
    message = build_message({"recipient": "owner@example.com", "subject": "Weekly report", "headers": {},
                             "text_body": "figures", "html_body": "<p>figures</p>"}, "Beacon <beacon@example.com>")
    sent = parsedate_to_datetime(str(message["Date"]))
    assert sent.utcoffset() == timedelta(0)
    assert before <= sent <= datetime.now(UTC)
    assert "Beacon <beacon@example.com>" == message["From"]
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith(">")
