"""Typed messages between the api and the analytics service (msgspec), besides the Stats API's own shapes."""

from __future__ import annotations

from datetime import date

import msgspec


class PropertyKeys(msgspec.Struct, frozen=True):
    """``GET /sites/{site_id}/property-keys``: custom property keys seen between two local dates."""

    site_id: int
    date_from: date
    date_to: date
    keys: list[str]
    """Sorted, at most the ``limit`` asked for."""
