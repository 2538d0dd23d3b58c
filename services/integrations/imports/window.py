"""Which days an import may keep: never the days of the site's own tracked stats or of another import.

Plausible CE keeps an import's range off the site's native stats and off its other completed imports
(``Plausible.Imported.clamp_dates``): the range ends where the native stats begin, and of the days no completed
import covers it keeps the longest run; when nothing is left it refuses the import ("Imported data time range
is completely overlapping with existing data. Nothing to import."). Beacon applies the same rule to the days an
import actually holds, when its job ends, with one difference: Plausible lets a kept run share its first and
last day with the neighbouring import or the first native day, and needs three days or more; Beacon keeps no
shared day (a day counted from two sources would count twice) and keeps a single free day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

NO_WINDOW = "Imported data time range is completely overlapping with existing data. Nothing to import."
"""Plausible's words when an import has no day left."""

_DAY = dt.timedelta(days=1)


def free_window(start: dt.date, end: dt.date, native_start: dt.date | None,
                occupied: Iterable[tuple[dt.date, dt.date]]) -> tuple[dt.date, dt.date] | None:
    """The longest run of days in ``start..end`` (inclusive) before ``native_start`` (the site-local day of
    the site's first tracked event, ``None`` when it has none) and outside every ``occupied`` range (other
    completed imports' inclusive ``(start_date, end_date)``); the earliest of equally long runs. ``None`` when
    no day is free.
    """
    if native_start is not None:
        end = min(end, native_start - _DAY)
    runs: list[tuple[dt.date, dt.date]] = []
    day = start
    for first, last in sorted(occupied):
        if day > end:
            break
        if last < day:
            continue
        if first > day:
            runs.append((day, min(first - _DAY, end)))
        day = max(day, last + _DAY)
    if day <= end:
        runs.append((day, end))
    if not runs:
        return None
    return max(runs, key=lambda run: ((run[1] - run[0]).days, -run[0].toordinal()))


__all__ = ["NO_WINDOW", "free_window"]
