"""Waiting for something that happens in another process: poll it with a deadline, never sleep a fixed time."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TypeVar

import httpx

from app.core.polling import poll, poll_async

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 30.0, what: str = "the condition", *,
               interval: float = 0.1) -> T:
    """Call ``check`` until it returns a truthy value and return that value (:func:`app.core.polling.poll`).

    Raises ``AssertionError`` naming ``what`` when ``timeout`` seconds pass first; ``check`` itself may raise
    (an assertion that the thing waited for is still possible, for instance).
    """
    value = poll(check, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return value


async def wait_until_async(check: Callable[[], Awaitable[T]], timeout: float = 30.0, what: str = "the condition",
                           *, interval: float = 0.1) -> T:
    """:func:`wait_until` for a coroutine ``check``, sleeping without blocking the event loop."""
    value = await poll_async(check, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return value


def healthy(client: httpx.Client) -> httpx.Response | None:
    """``GET /api/health`` when it answers 200; ``None`` while it does not answer or answers otherwise."""
    with contextlib.suppress(httpx.HTTPError):
        answer = client.get("/api/health")
        if answer.status_code == HTTPStatus.OK:
            return answer
    return None
