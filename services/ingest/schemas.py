"""The Events API body, as Plausible's trackers and clients send it."""

from __future__ import annotations

from typing import Any

import msgspec


class EventIn(msgspec.Struct, forbid_unknown_fields=False):
    """``POST /api/event``. Long names are Plausible's documented ones; short ones its tracker's."""

    name: str | int | float | None = None
    """Plausible takes a number as a name too (stored as its text)."""
    url: str | None = None
    domain: str | None = None
    referrer: str | None = None
    props: Any = None
    """Any JSON: only an object (or a string holding one) gives props; anything else is ignored, as in Plausible."""
    meta: Any = None
    """Plausible's older name for ``props``."""
    revenue: Any = None
    """An object (or a string holding one); anything Plausible would not record is ignored, the event kept."""
    interactive: bool = True
    n: str | int | float | None = None
    u: str | None = None
    d: str | None = None
    r: str | None = None
    p: Any = None
    m: Any = None
    r_revenue: Any = msgspec.field(default=None, name="$")
    """Revenue in the tracker's short form."""
    h: int | bool | None = None
    """Hash-based routing: the URL's fragment is part of the page path."""
    hashMode: int | bool | None = None
    """Plausible's long name for ``h``."""
    i: bool | None = None
    """``false`` for events that do not count as interaction (a bounce stays a bounce)."""
    sd: Any = None
    """Scroll depth of an ``engagement`` event: the deepest point of the page seen, percent."""
    e: Any = None
    """Engaged time of an ``engagement`` event: milliseconds the page was visible since the last one."""
