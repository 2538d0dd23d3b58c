"""Shapes of the Plausible-compatible Sites API."""

from __future__ import annotations

import msgspec


class SiteCreate(msgspec.Struct, forbid_unknown_fields=False):
    domain: str | None = None
    timezone: str = "Etc/UTC"


class SiteOut(msgspec.Struct):
    domain: str
    timezone: str


class GoalCreate(msgspec.Struct, forbid_unknown_fields=False):
    site_id: str | None = None
    goal_type: str | None = None
    event_name: str | None = None
    page_path: str | None = None
    display_name: str | None = None


class GoalDelete(msgspec.Struct, forbid_unknown_fields=False):
    site_id: str | None = None


class GoalOut(msgspec.Struct):
    id: int
    display_name: str
    goal_type: str
    event_name: str | None
    page_path: str | None


class Deleted(msgspec.Struct):
    deleted: bool = True
