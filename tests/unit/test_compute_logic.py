"""Summary statistics of daily series."""

from __future__ import annotations

from services.compute.logic import summarize


def test_summary_of_a_series() -> None:
    """Figures computed by hand for 2, 4, 4, 4, 5, 5, 7, 9."""
    summary = summarize([2, 4, 4, 4, 5, 5, 7, 9])
    assert (8, 40, 5.0, 4.5, 2, 9, 9) == (summary.days, summary.total, summary.mean, summary.median,
                                          summary.minimum, summary.maximum, summary.last)
    assert 2.1381 == summary.stdev
    # history 2,4,4,4,5,5,7: mean 31/7, sum of squared deviations 96/7, sample stdev sqrt(16/7)
    assert 3.0237 == summary.last_zscore


def test_flat_or_short_series_has_no_zscore() -> None:
    """No z-score without spread or history; an empty series is all zeros."""
    assert summarize([3, 3, 3, 10]).last_zscore is None
    assert summarize([5]).last_zscore is None
    assert 0 == summarize([]).days
