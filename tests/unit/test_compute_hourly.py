"""The hourly check without Redis: the hour is still scored, by replaying 31 days, as ``POST /detect`` would."""

from __future__ import annotations

import asyncio
import math
from datetime import date, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from app.devstack import free_port
from services.compute import hourly
from services.compute.logic import detect_series, fill_buckets
from services.compute.schemas import DetectHourRequest, DetectRequest

HOUR = datetime(2026, 2, 20, 14)


def rows(first: date, last: date) -> list[dict[str, Any]]:
    """Analytics' answer for ``[first, last]``: a daily rhythm, and 120 at HOUR (empty hours omitted)."""
    out = []
    moment = datetime.combine(first, datetime.min.time())
    while moment.date() <= last:
        value = 120 if moment == HOUR else round(6 + 5 * math.sin((moment.hour - 8) / 24 * 2 * math.pi))
        if value:
            out.append({"dimensions": [f"{moment:%Y-%m-%d %H}:00:00"], "metrics": [value]})
        moment += timedelta(hours=1)
    return out


def test_without_redis_the_hour_is_scored_by_a_replay() -> None:
    """Nothing listens on the Redis port: the state can be neither read nor stored, and the answer is the
    replay's (``rebuilt``), equal to ``detect_series`` over the same 31 days."""

    async def fetch(first: date, last: date) -> list[dict[str, Any]]:
        return rows(first, last)

    async def check() -> hourly.DetectHourResponse:
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
        try:
            return await hourly.detect_hour(client, "k", DetectHourRequest("a.example", HOUR), fetch)
        finally:
            await client.aclose()

    answer = asyncio.run(check())
    first = HOUR.date() - timedelta(days=30)
    labels, stamps, values = fill_buckets(rows(first, HOUR.date()), first, HOUR.date(), "hour")
    replay = detect_series(DetectRequest("a.example", [first, HOUR.date()]), labels, stamps, values)
    expected = next(p for p in replay.points if p.time == "2026-02-20 14:00:00")
    assert ("rebuilt", 30 * 24 + 15, expected, True) == (answer.state, answer.hours_fed, answer.point,
                                                         answer.point.anomaly)
