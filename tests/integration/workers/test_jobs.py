"""Jobs and the scheduler against real PostgreSQL and Redis."""

from __future__ import annotations

import time

import msgspec
import redis
from sqlalchemy import text

from app.core.db import make_engine
from app.core.monitoring import Sample, samples_key
from app.core.redis import Keys
from app.core.settings import Settings
from tests.support.workers import worker_context
from workers.actors import declare_actors
from workers.actors.analytics import refresh_rollups
from workers.actors.system import rotate_salts, sample_monitoring
from workers.scheduler import Scheduler


def test_rotate_salts_creates_todays_and_deletes_old(settings: Settings, db: None) -> None:
    """Salts older than 48 hours go, the previous day's stays, a fresh one appears; twice is the same."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO salts (salt, created_at) VALUES (:a, now() - interval '50 hours'), "
                          "(:b, now() - interval '30 hours')"), {"a": b"a" * 32, "b": b"b" * 32})
    with worker_context(settings) as worker:
        rotate_salts(worker)
        rotate_salts(worker)
    with engine.connect() as conn:
        ages = [row[0] for row in conn.execute(text(
            "SELECT extract(epoch FROM now() - created_at) / 3600 FROM salts ORDER BY created_at"))]
    engine.dispose()
    assert 2 == len(ages)
    assert 29 < ages[0] < 31
    assert ages[1] < 1


def test_sample_monitoring_job_stores_a_sample(settings: Settings, db: None, redis_client: redis.Redis) -> None:
    """The scheduled job stores one sample in the bounded list, with the parts that answered filled in."""
    with worker_context(settings) as worker:
        sample_monitoring(worker)
    samples = [msgspec.json.decode(raw, type=Sample)
               for raw in redis_client.lrange(samples_key(Keys(settings.redis.key_prefix)), 0, -1)]
    assert 1 == len(samples)
    assert samples[0].redis_memory_bytes is not None and samples[0].pg_connections is not None
    assert 0 == samples[0].websocket_connections


def test_only_one_scheduler_leads(settings: Settings, redis_client: redis.Redis) -> None:
    """Two schedulers: one holds the lock and enqueues; the other waits until the lock expires."""
    with worker_context(settings) as worker:
        actors = declare_actors(worker.broker, worker)
        first, second = Scheduler(settings, redis_client, actors), Scheduler(settings, redis_client, actors)
        second.identity = "other-host:1"
        now = time.time()
        first.tick(now)
        second.tick(now)
        assert (True, False) == (first.leader, second.leader)
        keys = Keys(settings.redis.key_prefix)
        assert redis_client.get(keys.heartbeat("scheduler")) is not None
        queued = redis_client.llen(f"{settings.redis.key_prefix}dramatiq:system")
        assert 3 == queued  # heartbeat, rotate_salts and sample_monitoring, once
        first.release()
        second.tick(now + 1)
        assert second.leader


def test_refresh_rollups_job_rolls_up_final_days(settings: Settings, db: None) -> None:
    """The job rolls a site up to two days ago in its time zone; running it again changes nothing."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site_id = conn.execute(text("INSERT INTO sites (domain, timezone) VALUES ('job.example', 'UTC') "
                                    "RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, "
                          "pathname) VALUES (:s, now() - interval '5 days', 'pageview', 1, 1, 'job.example', '/')"),
                     {"s": site_id})
    with worker_context(settings) as worker:
        refresh_rollups(worker, site_id)
        refresh_rollups(worker, site_id)
    with engine.connect() as conn:
        until = conn.execute(text("SELECT rolled_until = (now() AT TIME ZONE 'UTC')::date - 2 FROM rollup_state "
                                  "WHERE site_id = :s"), {"s": site_id}).scalar()
        visitors = conn.execute(text("SELECT sum(visitors) FROM rollup_spans WHERE site_id = :s "
                                     "AND dimension = ''"), {"s": site_id}).scalar()
    engine.dispose()
    assert (True, 1) == (until, visitors)
