"""The edge checks of app.core.inputs: depth on bytes, storable text, URL-encoded values, dates."""

from __future__ import annotations

from datetime import date

import pytest

from app.core.inputs import (
    InvalidInput,
    NestedTooDeep,
    check_date,
    check_json_bytes,
    check_text,
    check_urlencoded,
)


@pytest.mark.parametrize(("body", "max_depth"), [
    pytest.param(b"{\"a\": [1, {\"b\": [2]}]}", 4, id="exactly-at-limit"),
    pytest.param(b'{"a": "[[[[[[[[[[[[[[[[[[[[[["}', 1, id="brackets-in-string"),
    pytest.param(b'{"a": "\\"[[[[\\\\"}', 1, id="escaped-quotes"),
    pytest.param(b'"\\\\u0000"', 1, id="escaped-backslash-then-u0000-is-text"),
    pytest.param(b"[]" * 100_000, 1, id="wide-not-deep"),
])
def test_accepted(body: bytes, max_depth: int) -> None:
    """Documents within the limits pass."""
    check_json_bytes(body, max_depth=max_depth)


@pytest.mark.parametrize(("body", "error", "reason"), [
    pytest.param(b'{"a": [1, {"b": [2]}]}', NestedTooDeep, "deeper than 2", id="one-level-too-deep"),
    pytest.param(b"[" * 20_000 + b"]" * 20_000, NestedTooDeep, "deeper than 2", id="20000-levels"),
    pytest.param(b"[" * 20_000, InvalidInput, "unbalanced", id="20000-unclosed"),
    pytest.param(b'{"a": "\xff"}', InvalidInput, "UTF-8", id="invalid-utf8"),
    pytest.param(b'{"a": "\\u0000"}', InvalidInput, "NUL", id="nul-escape"),
    pytest.param(b'{"a": "\\\\\\u0000"}', InvalidInput, "NUL", id="nul-escape-after-escaped-backslash"),
    pytest.param(b'{"a": "\x00"}', InvalidInput, "NUL", id="raw-nul"),
])
def test_refused(body: bytes, error: type[Exception], reason: str) -> None:
    """Each refusal says why."""
    with pytest.raises(error, match=reason):
        check_json_bytes(body, max_depth=2)


@pytest.mark.parametrize(("value", "reason"), [
    pytest.param("a\x00b", "NUL", id="nul"),
    pytest.param("\ud800", "Unicode", id="lone-surrogate"),
    pytest.param("x" * 11, "at most 10", id="too-long"),
])
def test_text_that_no_column_holds(value: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        check_text(value, "name", 10)


@pytest.mark.parametrize("raw", [b"q=a%00", b"q=%ff", b"q=a\x00"])
def test_urlencoded_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        check_urlencoded(raw, "query string")


def test_urlencoded_accepts_utf8() -> None:
    check_urlencoded(b"q=caf%C3%A9+%2500", "query string")


@pytest.mark.parametrize("day", [date(1, 1, 1), date(1969, 12, 31), date(3000, 1, 1), date(9999, 12, 31)])
def test_dates_outside_the_calendar_are_refused(day: date) -> None:
    with pytest.raises(InvalidInput, match="1970-01-01 to 2999-12-31"):
        check_date(day, "from")
