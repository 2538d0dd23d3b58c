"""Waiting with a deadline for something another process does: call a check until it holds (tenacity).

One helper for every such wait: the development stack's (a port that listens, a process that exits) and the
tests' (``tests/support/polling.py``). A fixed sleep would either wait too long or not long enough.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


def _falsy(value: object) -> bool:
    return not value


def _nothing(_state: tenacity.RetryCallState) -> None:
    return None


def poll(check: Callable[[], T], timeout: float, interval: float = 0.05) -> T | None:
    """Call ``check`` every ``interval`` seconds until it returns a truthy value, and return that value.

    Returns ``None`` when ``timeout`` seconds pass first (``check`` has then run at least once). An exception
    raised by ``check`` is not retried: it propagates at once.
    """
    retrying = tenacity.Retrying(stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(interval),
                                 retry=tenacity.retry_if_result(_falsy), retry_error_callback=_nothing)
    result: T | None = retrying(check)
    return result


async def poll_async(check: Callable[[], Awaitable[T]], timeout: float, interval: float = 0.05) -> T | None:
    """:func:`poll` for a coroutine ``check``, waiting without blocking the event loop."""
    retrying = tenacity.AsyncRetrying(stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(interval),
                                      retry=tenacity.retry_if_result(_falsy), retry_error_callback=_nothing)
    result: T | None = await retrying(check)
    return result
