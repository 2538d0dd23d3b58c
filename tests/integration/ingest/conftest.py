"""Ingest fixtures: the app in-process, or real ``beacon serve ingest`` processes, against the test servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from app.core.settings import Settings
from tests.support.ingest import IngestProcesses, ingest_client, sql


@pytest.fixture
def sites(settings: Settings, db: None, redis_client: redis.Redis) -> dict[str, int]:
    """Two sites; the tables and Redis db are emptied after the test."""
    sql(settings, "INSERT INTO sites (domain) VALUES ('example.com'), ('second.org')")
    return {str(domain): int(str(site_id)) for site_id, domain in sql(settings, "SELECT id, domain FROM sites")}


@pytest.fixture
async def client(settings: Settings, sites: dict[str, int]) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(settings) as test_client:
        yield test_client


@pytest.fixture
def ingest_processes(environment: dict[str, str]) -> Iterator[list[IngestProcesses]]:
    """Start with ``IngestProcesses(...).start()`` and append; every one is stopped after the test."""
    started: list[IngestProcesses] = []
    yield started
    for group in started:
        group.stop()
