"""What one ingest process keeps between requests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from app.core.settings import IngestSettings
from services.ingest.enrich import Countries, SpamList
from services.ingest.live import Live, RateLimiter
from services.ingest.logic import SaltCache, SiteCache
from services.ingest.writer import BatchWriter


@dataclass
class IngestState:
    settings: IngestSettings
    writer: BatchWriter
    live: Live
    limiter: RateLimiter
    sites: SiteCache
    salts: SaltCache
    countries: Countries
    spam: SpamList
    dropped: Counter[str] = field(default_factory=Counter)
    """Events accepted (202) but not stored, by reason: ``bot``, ``spam``, ``unknown_site``, ``excluded``."""
