"""The days an import keeps (Plausible's ``Imported.clamp_dates``, without shared edge days)."""

from __future__ import annotations

import datetime as dt

import pytest

from services.integrations.imports.window import free_window


def d(day: int) -> dt.date:
    return dt.date(2026, 3, day)


@pytest.mark.parametrize(("start", "end", "native", "occupied", "kept"), [
    (d(1), d(10), None, [], (d(1), d(10))),
    # ends the day before the site's first tracked day
    (d(1), d(10), d(6), [], (d(1), d(5))),
    (d(1), d(10), d(1), [], None),
    (d(5), d(10), d(2), [], None),
    # another import's days are skipped; the longest free run is kept
    (d(1), d(20), None, [(d(4), d(6))], (d(7), d(20))),
    (d(1), d(20), None, [(d(15), d(18))], (d(1), d(14))),
    (d(1), d(20), None, [(d(3), d(5)), (d(10), d(12))], (d(13), d(20))),
    # equally long runs: the earliest
    (d(1), d(9), None, [(d(5), d(5))], (d(1), d(4))),
    # wholly covered, or covered by imports reaching past both ends
    (d(4), d(6), None, [(d(1), d(10))], None),
    (d(4), d(6), None, [(d(1), d(4)), (d(5), d(9))], None),
    # imports outside the range do not matter, in any order
    (d(10), d(12), None, [(d(20), d(25)), (d(1), d(3))], (d(10), d(12))),
    # a single free day is kept
    (d(1), d(3), None, [(d(1), d(1)), (d(3), d(3))], (d(2), d(2))),
    (d(1), d(20), d(15), [(d(2), d(9))], (d(10), d(14))),
])
def test_free_window(start: dt.date, end: dt.date, native: dt.date | None,
                     occupied: list[tuple[dt.date, dt.date]], kept: tuple[dt.date, dt.date] | None) -> None:
    assert kept == free_window(start, end, native, occupied)
