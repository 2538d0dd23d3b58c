"""Time buckets: the one rule for the interval a date range is shown in, used by the api and analytics."""

from __future__ import annotations


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
