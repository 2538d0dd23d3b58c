"""The daily salts of visitor ids: one rule, used by ingest (which needs today's salt now) and by the worker
(which rotates them every hour).

A salt is today's for a day after it was created; yesterday's is kept so that visits that began under it go
on, and every salt is deleted after :data:`MAX_AGE_HOURS` (Plausible's rule, see DESIGN.md "Privacy").
Creating one takes a transaction-level advisory lock, so concurrent processes create one salt, not several.
Each statement is run by the caller's own connection (ingest is async, the worker sync).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import TextClause, text

MAX_AGE_HOURS = 48
"""Hours after which a salt is deleted (and no longer used)."""

LOCK = text("SELECT pg_advisory_xact_lock(hashtext('beacon.salts'))")
"""Serialises the creation of salts until the end of the transaction."""

RECENT = text("SELECT salt, created_at > now() - interval '1 day' FROM salts "
              "WHERE created_at > now() - make_interval(hours => :hours) ORDER BY created_at DESC LIMIT 2"
              ).bindparams(hours=MAX_AGE_HOURS)
"""Rows ``(salt, is today's)`` of the newest two live salts, newest first."""

CREATE_IF_STALE = text("INSERT INTO salts (salt) SELECT :salt WHERE NOT EXISTS "
                       "(SELECT 1 FROM salts WHERE created_at > now() - interval '1 day')")
"""Adds ``salt`` as today's unless there is one already; run after :data:`LOCK` in the same transaction."""

DELETE_EXPIRED = text("DELETE FROM salts WHERE created_at < now() - make_interval(hours => :hours)"
                      ).bindparams(hours=MAX_AGE_HOURS)
"""Deletes the salts older than :data:`MAX_AGE_HOURS`."""


def create_if_stale() -> tuple[TextClause, dict[str, Any]]:
    """The statement and parameters that add a fresh random salt (32 bytes) unless today's exists."""
    return CREATE_IF_STALE, {"salt": secrets.token_bytes(32)}
