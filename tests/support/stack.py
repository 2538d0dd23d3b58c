"""The e2e tests' stack (every watcher under circusd, behind Nginx) and helpers that drive it: sign-in,
watchers, the events the tracker stored, the tracker's test page."""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.core.db import make_engine
from app.core.settings import Settings
from app.devstack import Circus, Nginx
from app.mailsink import MailSink
from tests.support.polling import healthy, wait_until

ADMIN_EMAIL = "admin@e2e.test"
ADMIN_PASSWORD = "e2e-admin-password"
SITE = "e2e.example"


@dataclass
class Stack:
    environment: dict[str, str]
    settings: Settings
    circus: Circus
    nginx: Nginx
    base_url: str
    cert: Path
    mail: MailSink
    """The SMTP server on loopback (aiosmtpd) that every email of the stack goes to, kept as .eml files."""

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), timeout=15, **kwargs)  # type: ignore[arg-type]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def beacon(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.prefix) / "bin" / "beacon"), *args],
                              env={**os.environ, **self.environment}, input=stdin, capture_output=True,
                              text=True, timeout=60, check=False)

    def wait_healthy(self, timeout: float = 60) -> httpx.Response:
        with self.client() as client:
            return wait_until(lambda: healthy(client), timeout, "the stack's /api/health to answer 200",
                              interval=0.25)


# The tracker's test site, shared by the tracker and dashboard tests.
PAGE = """<!doctype html><html><head><title>t</title>
<script>window.plausible = window.plausible || function () {
  (window.plausible.q = window.plausible.q || []).push(arguments) };
plausible("Queued", {props: {early: "yes"}});</script>
<script defer data-domain="%(site)s" %(options)s src="%(beacon)s/js/script.js"></script>
</head><body>
<a id="out" href="https://elsewhere.test/away">away</a>
<a id="file" href="/files/report.pdf">report</a>
<script>for (const a of document.querySelectorAll("a")) a.addEventListener("click", e => e.preventDefault());</script>
</body></html>"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
HOSTS = "MAP tracker.test 127.0.0.1, MAP elsewhere.test 127.0.0.1"


@contextlib.contextmanager
def login(stack: Stack) -> Iterator[httpx.Client]:
    """A client signed in through the login form (with its CSRF token)."""
    with stack.client() as client:
        page = client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        answer = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/",
                                             "_csrf_token": token.group(1)})
        assert 303 == answer.status_code, answer.text
        yield client


def watcher_pids(stack: Stack, watcher: str) -> set[int]:
    output = stack.circus.ctl("list", watcher).strip()
    return {int(pid) for pid in output.split(",") if pid.strip()}


def events(stack: Stack, since_id: int) -> list[tuple[Any, ...]]:
    engine = make_engine(stack.settings.database)
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(text(
            "SELECT name, pathname, props, revenue_amount::text, revenue_currency, hostname, browser FROM events "
            "WHERE id > :id AND hostname = 'tracker.test' ORDER BY id"), {"id": since_id})]
    engine.dispose()
    return rows


def last_id(stack: Stack) -> int:
    engine = make_engine(stack.settings.database)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT coalesce(max(id), 0) FROM events")).scalar_one()
    engine.dispose()
    return int(value)


def wait_for(stack: Stack, since_id: int, count: int, timeout: float = 30) -> list[tuple[Any, ...]]:
    """The events stored after ``since_id`` once there are ``count`` of them."""
    return wait_until(lambda: rows if len(rows := events(stack, since_id)) >= count else None, timeout,
                      f"{count} events after id {since_id}", interval=0.2)
