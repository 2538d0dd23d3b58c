"""The Events API body, as Plausible's trackers and clients send it."""

from __future__ import annotations

from typing import Any

import msgspec


class EventIn(msgspec.Struct, forbid_unknown_fields=False):
    """``POST /api/event``. Long names are Plausible's documented ones; short ones its tracker's."""

    name: str | None = None
    url: str | None = None
    domain: str | None = None
    referrer: str | None = None
    props: dict[str, Any] | None = None
    revenue: dict[str, Any] | str | None = None
    interactive: bool = True
    n: str | None = None
    u: str | None = None
    d: str | None = None
    r: str | None = None
    p: dict[str, Any] | str | None = None
    r_revenue: dict[str, Any] | str | None = msgspec.field(default=None, name="$")
    """Revenue in the tracker's short form."""
    h: int | bool | None = None
    """Hash-based routing: the URL's fragment is part of the page path."""
    i: bool | None = None
    """``false`` for events that do not count as interaction (a bounce stays a bounce)."""
