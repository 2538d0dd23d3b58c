"""app.core.polling: a check is called until it holds, or until the deadline passes."""

from __future__ import annotations

import itertools

import pytest

from app.core.polling import poll, poll_async


def test_poll_returns_the_first_truthy_value() -> None:
    """The value that ended the wait is returned, after as many calls as it took."""
    calls = itertools.count(1)

    def check() -> int:
        n = next(calls)
        return n if n >= 3 else 0

    assert 3 == poll(check, timeout=30, interval=0.01)


def test_poll_gives_none_when_the_deadline_passes() -> None:
    """A check that never holds ends in ``None`` once the timeout has passed."""
    calls: list[int] = []
    assert poll(lambda: calls.append(1), timeout=0.1, interval=0.01) is None
    assert calls


def test_an_exception_of_the_check_is_not_retried() -> None:
    """The check's own error propagates at once."""
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        poll(check, timeout=30)
    assert [1] == calls


async def test_poll_async_returns_the_first_truthy_value() -> None:
    """The coroutine version waits the same way."""
    calls = itertools.count(1)

    async def check() -> int:
        n = next(calls)
        return n if n >= 2 else 0

    assert 2 == await poll_async(check, timeout=30, interval=0.01)
