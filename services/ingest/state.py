"""What one ingest process keeps between requests."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.settings import IngestSettings
from services.ingest.enrich import Countries
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
