"""The monitoring page's pure parts: circusd's answer, queue names, ingest's exposition, rates, charts."""

from __future__ import annotations

import pytest

from app.core.monitoring import (
    QUEUES,
    ROLLUP_FINAL_AFTER_DAYS,
    IngestCounts,
    ProcessStats,
    Sample,
    WatcherStats,
    count_restarts,
    ingest_rate,
    parse_circus_stats,
    parse_ingest_metrics,
    queue_names,
)
from app.domain.admin.schemas import Chart
from app.domain.admin.services import charts, human, sparkline
from services.analytics.rollups import FINAL_AFTER_DAYS
from workers.actors import SPECS


def test_circus_stats_become_watchers_with_bytes_and_seconds() -> None:
    """circusd's ``stats`` answer gives each watcher's processes; RSS in bytes, a stopped process skipped."""
    answer = {"status": "ok", "infos": {
        "api": {"101": {"cpu": 12.5, "mem": 1.2, "mem_info1": "64M", "age": 30.5, "pid": 101},
                "102": "No such process (stopped?)"},
        "worker": {},
    }}
    assert [WatcherStats("api", [ProcessStats(101, 12.5, 64 * 1024 * 1024, 1.2, 30.5)]),
            WatcherStats("worker", [])] == parse_circus_stats(answer)


def test_circus_error_answer_raises() -> None:
    """An error answer from circusd is an error of the part, not an empty list of watchers."""
    with pytest.raises(RuntimeError, match="circusd answered error"):
        parse_circus_stats({"status": "error", "reason": "arbiter is stopping"})


def test_restarts_are_process_ids_of_the_last_hour_that_are_gone() -> None:
    """Two samples saw pids 1, 2 and 3 of ingest; 3 and 4 run now: two processes were replaced."""
    watchers = [WatcherStats("ingest", [ProcessStats(3, None, None, None, None),
                                        ProcessStats(4, None, None, None, None)]),
                WatcherStats("api", [ProcessStats(9, None, None, None, None)])]
    count_restarts(watchers, [Sample(at=1, pids={"ingest": [1, 2]}), Sample(at=2, pids={"ingest": [2, 3]})])
    assert [2, 0] == [w.restarts_last_hour for w in watchers]


def test_queue_names_from_dramatiq_keys() -> None:
    """Queue, delayed, dead-letter and bookkeeping keys map to the queue names they belong to."""
    keys = ["beacon:dramatiq:default", "beacon:dramatiq:default.msgs", "beacon:dramatiq:system.DQ.msgs",
            "beacon:dramatiq:imports.XQ", "beacon:dramatiq:imports.XQ.msgs", "beacon:dramatiq:__acks__.w1.default",
            "beacon:dramatiq:__heartbeats__", "beacon:other"]
    assert ["default", "imports", "system"] == queue_names(keys, "beacon:dramatiq")


EXPOSITION = """\
# HELP beacon_ingest_events_accepted_total Events stored.
# TYPE beacon_ingest_events_accepted_total counter
beacon_ingest_events_accepted_total 120.0
# HELP beacon_ingest_events_dropped_total Events dropped, by reason.
# TYPE beacon_ingest_events_dropped_total counter
beacon_ingest_events_dropped_total{reason="bot"} 7.0
beacon_ingest_events_dropped_total{reason="unknown_site"} 2.0
"""


def test_ingest_exposition_gives_accepted_and_dropped_by_reason() -> None:
    """The agreed counter names are summed; the reasons keep their label."""
    assert IngestCounts(source="metrics", accepted_total=120.0, dropped_total={"bot": 7.0, "unknown_site": 2.0}) \
        == parse_ingest_metrics(EXPOSITION)


def test_ingest_exposition_without_the_counter_is_an_error() -> None:
    """A /metrics without ingest's counter (another process answered) is not read as zero events."""
    with pytest.raises(ValueError, match="beacon_ingest_events_accepted_total"):
        parse_ingest_metrics("# TYPE up gauge\nup 1\n")


@pytest.mark.parametrize(("previous", "counters", "stored", "expected"), [
    pytest.param(Sample(at=940.0, ingest_accepted=100.0), IngestCounts(accepted_total=160.0), None,
                 (60.0, "metrics"), id="counter-increase-per-minute"),
    pytest.param(Sample(at=970.0, ingest_accepted=100.0), IngestCounts(accepted_total=115.0), None,
                 (30.0, "metrics"), id="scaled-to-a-minute"),
    pytest.param(Sample(at=940.0, ingest_accepted=500.0), IngestCounts(accepted_total=20.0), None,
                 (None, "metrics"), id="ingest-restarted"),
    pytest.param(None, IngestCounts(accepted_total=20.0), None, (None, "metrics"), id="first-reading"),
    pytest.param(Sample(at=100.0, ingest_accepted=1.0), IngestCounts(accepted_total=20.0), None,
                 (None, "metrics"), id="previous-too-old"),
    pytest.param(None, IngestCounts(error="ConnectError"), 42.0, (42.0, "database"), id="database-fallback"),
    pytest.param(None, IngestCounts(error="ConnectError"), None, (None, "none"), id="nothing"),
])
def test_ingest_rate(previous: Sample | None, counters: IngestCounts, stored: float | None,
                     expected: tuple[float | None, str]) -> None:
    """Events per minute from ingest's counter between samples, else from PostgreSQL's last minute."""
    assert expected == ingest_rate(1000.0, counters, previous, stored)


def test_charts_keep_gaps_and_sparkline_breaks_there() -> None:
    """A sample without Redis leaves a gap in Redis's chart; the SVG draws two runs around it."""
    samples = [Sample(at=0.0 + 60 * i, redis_memory_bytes=None if i == 2 else 1000 * (i + 1)) for i in range(5)]
    chart = next(c for c in charts(samples) if c.key == "redis_memory_bytes")
    assert [1000.0, 2000.0, None, 4000.0, 5000.0] == [value for _, value in chart.points]
    assert 5000.0 == chart.latest
    assert 2 == len(sparkline(chart))
    lone = Chart("x", "X", "count", [(0.0, 1.0)], 1.0)
    assert ["240.0,2.0 240.0,2.0"] == sparkline(lone)
    assert [] == sparkline(Chart("x", "X", "count", [], None))


@pytest.mark.parametrize(("value", "unit", "text"), [
    pytest.param(None, "bytes", "n/a", id="missing"),
    pytest.param(3 * 1024 * 1024, "bytes", "3.0 MiB", id="bytes"),
    pytest.param(5400.0, "seconds", "90 min", id="seconds"),
    pytest.param(12.34, "percent", "12.3 %", id="percent"),
    pytest.param(1234.0, "count", "1,234", id="count"),
    pytest.param(60.0, "per_minute", "60", id="per-minute"),
])
def test_human_values(value: float | None, unit: str, text: str) -> None:
    """The page's figures in people's units."""
    assert text == human(value, unit)


def test_rollup_finality_matches_the_analytics_service() -> None:
    """The lag is measured against the same finality rule the rollups use."""
    assert FINAL_AFTER_DAYS == ROLLUP_FINAL_AFTER_DAYS


def test_known_queues_are_the_workers_queues() -> None:
    """Every queue an actor uses is listed on the page even while it is empty."""
    assert set(QUEUES) == {spec.queue_name for spec in SPECS}
