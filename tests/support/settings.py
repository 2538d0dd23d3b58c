"""A complete environment for load_settings() that names no running server: for tests that touch none."""

from __future__ import annotations

BASE = {
    "BEACON_DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/beacon",
    "BEACON_REDIS_URL": "redis://127.0.0.1:6379/0",
    "BEACON_SECRET_KEY": "x" * 40,
    "BEACON_INTERNAL_TOKEN": "token",
}
