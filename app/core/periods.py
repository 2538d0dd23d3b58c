"""Calendar arithmetic of date ranges and the one rule for the interval a range is shown in, used by the api
and analytics."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def month_start(day: date, months_back: int = 0) -> date:
    """The first day of ``day``'s month, ``months_back`` months earlier (negative: later)."""
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    return month_start(day, -1) - timedelta(days=1)


def local_day_bounds(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[start, end)`` covering the whole local days ``first``..``last`` in ``tz``
    (an IANA time zone name; a day is 23 or 25 hours long when the clocks change)."""
    zone = ZoneInfo(tz)
    return (datetime.combine(first, time.min, zone).astimezone(UTC),
            datetime.combine(last + timedelta(days=1), time.min, zone).astimezone(UTC))


def default_interval(days: int) -> str:
    """The bucket of a range of ``days`` local days: ``hour``, ``day``, ``week`` or ``month``.

    The rule of Plausible's Stats API ``time`` dimension: hours for one day, days up to 40, weeks up to 120,
    months beyond.
    """
    if days <= 1:
        return "hour"
    if days <= 40:
        return "day"
    if days <= 120:
        return "week"
    return "month"
