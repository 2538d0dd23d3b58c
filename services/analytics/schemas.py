"""Answers of the analytics service."""

from __future__ import annotations

from datetime import date

import msgspec


class PageviewCount(msgspec.Struct):
    site_id: int
    date_from: date
    date_to: date
    timezone: str
    pageviews: int


class DailyCount(msgspec.Struct):
    date: date
    pageviews: int
