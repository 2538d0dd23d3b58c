"""Helpers of the e2e tests that drive the stack: sign-in, watchers, the events the tracker stored.

Imported by the e2e test modules, which never import each other.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text

from app.core.db import make_engine
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.support.polling import wait_until

if TYPE_CHECKING:
    from tests.e2e.conftest import Stack

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
