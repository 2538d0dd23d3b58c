"""Typed messages between the api and the analytics service (msgspec), besides the Stats API's own shapes."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec


class PropertyKeys(msgspec.Struct, frozen=True):
    """``GET /sites/{site_id}/property-keys``: custom property keys seen between two local dates."""

    site_id: int
    date_from: date
    date_to: date
    keys: list[str]
    """Sorted, at most the ``limit`` asked for."""


class EventsReceived(msgspec.Struct, frozen=True):
    """``GET /sites/{site_id}/received``: whether any event of the site is stored (the setup page's check)."""

    site_id: int
    received: bool


Filter = list[Any]
"""A Stats API v2 filter: ``[operator, dimension, clauses]``, or ``["and"|"or", [filters]]``, ``["not", filter]``."""


class StatsQuery(msgspec.Struct, frozen=True, omit_defaults=True):
    """``POST /query`` of the analytics service: Plausible's Stats API v2 query (validated by analytics)."""

    site_id: str
    metrics: list[str]
    date_range: str | list[str]
    dimensions: list[str] = msgspec.field(default_factory=list)
    filters: list[Filter] = msgspec.field(default_factory=list)
    order_by: list[list[str]] | None = None
    include: dict[str, bool] | None = None
    pagination: dict[str, int] | None = None


class ResultRow(msgspec.Struct, frozen=True):
    dimensions: list[Any]
    """Labels: strings, or dates / date-times as ISO strings for time dimensions."""
    metrics: list[int | float | dict[str, Any] | None]
    """In the order of the query's metrics; null where a metric has no value (time on page); a revenue metric
    is Plausible's money object ``{"currency", "value", "long", "short"}``."""


class ResultMeta(msgspec.Struct, frozen=True, omit_defaults=True):
    time_labels: list[str] | None = None
    total_rows: int | None = None
    imports_included: bool | None = None
    """Plausible's imports fields, present when the query asked for imports (``include.imports``)."""
    imports_skip_reason: str | None = None
    imports_warning: str | None = None


class StatsAnswer(msgspec.Struct, frozen=True):
    """The answer to a :class:`StatsQuery`: Plausible's response shape (``query`` echoes the resolved query)."""

    results: list[ResultRow]
    meta: ResultMeta
    query: dict[str, Any]

    @property
    def first_day(self) -> date | None:
        """The first local day of the resolved date range."""
        resolved = self.query.get("date_range") or [None]
        return date.fromisoformat(str(resolved[0])[:10]) if resolved[0] else None
