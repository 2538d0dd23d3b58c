"""Statistics over daily series."""

from __future__ import annotations

import statistics

from services.compute.schemas import SeriesSummary


def summarize(values: list[int]) -> SeriesSummary:
    """Summary statistics of a series; the last value's z-score against the ones before it."""
    if not values:
        return SeriesSummary(days=0, total=0, mean=0.0, median=0.0, stdev=0.0, minimum=0, maximum=0,
                             last=0, last_zscore=None)
    history = values[:-1]
    zscore: float | None = None
    if len(history) >= 2:
        spread = statistics.stdev(history)
        if spread > 0:
            zscore = round((values[-1] - statistics.fmean(history)) / spread, 4)
    return SeriesSummary(
        days=len(values),
        total=sum(values),
        mean=round(statistics.fmean(values), 4),
        median=float(statistics.median(values)),
        stdev=round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        minimum=min(values),
        maximum=max(values),
        last=values[-1],
        last_zscore=zscore,
    )
