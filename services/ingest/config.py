"""Tuning of the ingest service, from ``BEACON_INGEST_*`` variables (same sources as app.core.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ConfigError
from app.core.settings import read_env_file


@dataclass(frozen=True)
class IngestSettings:
    batch_size: int = 1000
    """Events after which a batch closes at once."""
    batch_wait_ms: float = 4.0
    """Milliseconds a batch stays open for more events after its first one arrived."""
    retry_after: int = 5
    """Seconds announced in ``Retry-After`` when PostgreSQL cannot take events."""
    rate_per_ip: int = 600
    """Events accepted per client IP per window (0: no limit)."""
    rate_per_site: int = 100_000
    """Events accepted per site per window (0: no limit)."""
    rate_window: int = 60
    """Length of a rate-limit window in seconds."""
    live_interval_ms: float = 250.0
    """Live messages of one site are coalesced into at most one per this interval."""
    session_timeout: int = 1800
    """Seconds of inactivity that end a visit."""
    presence_window: int = 300
    """A visitor seen within this many seconds counts as live."""


def load_ingest_settings(environ: Mapping[str, str] | None = None) -> IngestSettings:
    """Read ``BEACON_INGEST_*`` from ``environ`` (default: the process environment and BEACON_ENV_FILE)."""
    source = dict(os.environ if environ is None else environ)
    env = read_env_file(Path(source["BEACON_ENV_FILE"])) if source.get("BEACON_ENV_FILE") else {}
    env.update(source)
    defaults = IngestSettings()
    values: dict[str, float] = {}
    for name, default in vars(defaults).items():
        raw = env.get(f"BEACON_INGEST_{name.upper()}", "")
        if raw == "":
            continue
        try:
            values[name] = type(default)(raw)
        except ValueError:
            raise ConfigError(f"BEACON_INGEST_{name.upper()} must be a number, got {raw!r}") from None
        if values[name] < 0:
            raise ConfigError(f"BEACON_INGEST_{name.upper()} must not be negative")
    return IngestSettings(**values)  # type: ignore[arg-type]
