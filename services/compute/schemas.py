"""Answers of the compute service."""

from __future__ import annotations

import msgspec


class SeriesSummary(msgspec.Struct):
    days: int
    total: int
    mean: float
    median: float
    stdev: float
    minimum: int
    maximum: int
    last: int
    last_zscore: float | None
    """How unusual the last day is against the days before it (None when that cannot be told)."""
