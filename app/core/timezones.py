"""The time zones a site may have: the IANA names of the tz database installed on this host."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

HOST_LINKS = frozenset({"localtime", "posixrules"})
"""Files of the tz directory that name this machine's own zone (Debian links ``localtime`` to
/etc/localtime), not a zone: a site's reports would follow whichever machine computes them."""


@cache
def site_timezones() -> frozenset[str]:
    """Every IANA zone name (``Europe/Berlin``, ``UTC``, ...) known to ``zoneinfo`` here, without host links."""
    return frozenset((available_timezones() - HOST_LINKS) | {"UTC"})
