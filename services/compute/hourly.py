"""Hourly anomaly checks with the detector's state stored between them (the ``anomaly`` alert rule's pass).

Scoring an hour by replaying the 31 days before it costs a 744-point replay per check; keeping the detector
learnt so far makes each hourly check one update. The state of one site and metric is one Redis string,
``{prefix}compute:detector:{site}:{metric}`` (:meth:`app.core.redis.Keys.compute_detector`), MessagePack of
:class:`StoredHour`: the detector (:func:`services.compute.detect.dump_state`), the index of the last hour it
learnt (hours since 1970-01-01T00:00 in site time) and that hour's verdict. It expires after
:data:`STATE_TTL_S` without a check; 15-20 KiB for a month of history, at most about 80 KiB once the
likelihood's history (4,000 points) is full.

The state is rebuilt - the 31 days up to the hour replayed, as :func:`services.compute.logic.detect_series`
does - when it is missing (first check, expiry, Redis flushed or unavailable), was learnt under other detector
parameters, is 31 days or more behind, or is ahead of the asked hour (a site's time zone changed, data were
re-imported for the past). Hours between the stored one and the asked one are fetched in one analytics query
and learnt in order, so a missed pass costs nothing but those hours. A value is read once, when its hour is
first scored: events arriving later for an already scored hour do not change the state.

Two checks of the same site and metric at once (two rules) each compute the same answer from the same state;
the last write wins, which loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.compute.detect import OnlineDetector, Scored, dump_state, load_state
from services.compute.logic import detector_for, explain, fill_buckets
from services.compute.schemas import AnomalyPoint, DetectHourRequest, DetectHourResponse

logger = logging.getLogger("beacon.compute")

HISTORY_DAYS = 31
"""Days replayed when the state is rebuilt (the hourly range analytics allows)."""
STATE_TTL_S = 14 * 86400
"""A state not checked for this long is dropped by Redis (a paused rule; rebuilt when it resumes)."""
CONFIG = detector_for("hour", HISTORY_DAYS * 24)
"""The detector of the hourly check: the one ``POST /detect`` uses on 31 days of hourly points."""

Fetch = Callable[[date, date], Awaitable[list[dict[str, Any]]]]
"""Analytics' ``POST /query`` rows of the metric by ``time:hour`` for ``[first day, last day]``."""


class StoredHour(msgspec.Struct, array_like=True):
    position: int
    """Hours since 1970-01-01T00:00 (site time) of the last hour learnt."""
    value: float
    score: float
    expected: float
    expected_low: float
    expected_high: float
    surprise: float
    novelty: float
    detector: bytes


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(StoredHour)


def position_of(hour: datetime) -> int:
    """Hours since 1970-01-01T00:00 of a naive site-time hour (the phase ``detect_series`` uses)."""
    return int(hour.replace(tzinfo=UTC).timestamp()) // 3600


def hour_at(position: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(hours=position)


def _load(blob: bytes | None) -> tuple[StoredHour, OnlineDetector] | None:
    if not blob:
        return None
    try:
        stored = _DECODER.decode(blob)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    detector = load_state(stored.detector, CONFIG)
    return None if detector is None else (stored, detector)


async def detect_hour(store: aioredis.Redis, key: str, request: DetectHourRequest, fetch: Fetch) -> DetectHourResponse:
    """Score ``request.hour`` with the stored state (see the module's docstring), store the state, and answer.

    Raises:
        whatever ``fetch`` raises (analytics refused or unavailable); the stored state is then left as it was.
    """
    target = position_of(request.hour)
    try:
        blob = await store.get(key)
        loaded = _load(blob if isinstance(blob, bytes) else None)
    except (RedisError, OSError):  # Redis down: score as if there were no state (slower, same answer)
        logger.warning("detector state unreadable; rebuilding", extra={"key": key}, exc_info=True)
        loaded = None
    if loaded is not None and loaded[0].position == target:
        stored = loaded[0]
        scored = Scored(stored.score, stored.expected, stored.expected_low, stored.expected_high, stored.surprise,
                        stored.novelty)
        return _answer(request, scored, stored.value, "stored", 0)
    resume_at = hour_at(loaded[0].position + 1) if loaded is not None else request.hour
    behind = (request.hour.date() - resume_at.date()).days
    if loaded is not None and resume_at <= request.hour and behind < HISTORY_DAYS:
        # the hours to learn span at most HISTORY_DAYS days: one query within analytics' hourly limit
        detector, first_hour = loaded[1], resume_at
        state: Literal["advanced", "rebuilt"] = "advanced"
    else:
        detector = OnlineDetector(CONFIG)
        first_hour, state = request.hour - timedelta(days=HISTORY_DAYS - 1, hours=request.hour.hour), "rebuilt"
    first_day, last_day = first_hour.date(), request.hour.date()
    rows = await fetch(first_day, last_day)
    _, stamps, values = fill_buckets(rows, first_day, last_day, "hour")
    fed, scored, value = 0, Scored(0.0, 0.0, 0.0, 0.0, 0.0, 0.0), 0.0
    for stamp, seen in zip(stamps, values, strict=True):
        if first_hour <= stamp <= request.hour:  # the range always ends with request.hour's day
            scored, value = detector.update(seen, position_of(stamp)), seen
            fed += 1
    stored = StoredHour(target, value, scored.score, scored.expected, scored.expected_low, scored.expected_high,
                        scored.surprise, scored.novelty, dump_state(detector))
    try:
        await store.set(key, _ENCODER.encode(stored), ex=STATE_TTL_S)
    except (RedisError, OSError):
        logger.warning("detector state not stored", extra={"key": key}, exc_info=True)
    return _answer(request, scored, value, state, fed)


def _answer(request: DetectHourRequest, scored: Scored, value: float,
            state: Literal["advanced", "rebuilt", "stored"], fed: int) -> DetectHourResponse:
    anomaly = scored.score >= request.threshold and scored.score > 0
    point = AnomalyPoint(
        time=f"{request.hour:%Y-%m-%d %H}:00:00", value=value, score=round(scored.score, 4),
        expected=round(scored.expected, 2), expected_low=round(scored.expected_low, 2),
        expected_high=round(scored.expected_high, 2), anomaly=anomaly,
        explanation=explain(request.metric, "hour", request.hour, value, scored) if anomaly else None)
    return DetectHourResponse(site_id=request.site_id, metric=request.metric, threshold=request.threshold,
                              point=point, state=state, hours_fed=fed)
