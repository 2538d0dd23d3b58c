"""The compute service's figures: NAB scores, forecast accuracy, and the cost of scoring hourly points.

Run: ``make bench PYTEST_ARGS=tests/benchmarks/bench_compute.py`` (about a minute of one core). Needs the shared
data sets (``BEACON_DATASETS`` or ``../shared/datasets``). Prints:

1. NAB (34-file copy, 67 windows): the fixture detector (ARTime's published output) rescored at its published
   thresholds next to the published values, the published detectors rescored on this copy
   (``shared_subset_scores.json``), then this run's baselines (windowed Gaussian, seasonal z-score) and the compute
   service's detector, each at the corpus-wide threshold found by the exact sweep.
2. Forecasts: rolling origin (8 origins 30 days apart, 30-day horizon) on the three daily web series: MASE
   (scaled by the in-sample lag-7 seasonal-naive error), MAE relative to the seasonal-naive forecast, and the
   coverage of the 80 % and 95 % intervals.
3. Cost: one hourly point for one site (state loaded, point scored, state stored), and the hourly pass over
   ``BEACON_BENCH_SITES`` (default 10,000) sites; the same-run baseline is the pass without the detector
   (state round-trip only). State size per site (after 200 days, the history window full) is printed.
4. Anomaly alert rules: the hourly pass of ``BEACON_BENCH_SITES`` rules as the compute service makes it
   (``services.compute.hourly.detect_hour``: the stored state read from a real Redis, one point scored, the state
   written back), with the Redis round-trip alone as the same-run baseline, and the stateless check it replaced
   (31 days of hourly points replayed) on ``BEACON_BENCH_SITES / 10`` rules, with the time 10 times as many would
   take. The analytics query each check makes is not part of these figures.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import os
import statistics
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from app.devstack import Redis
from services.compute import hourly
from services.compute.batch import score_rows
from services.compute.detect import DetectorConfig, OnlineDetector, dump_state, load_state
from services.compute.forecast import forecast_daily
from services.compute.logic import detect_series
from services.compute.schemas import DetectHourRequest, DetectRequest
from tests.benchmarks.forecast_data import load_series, rolling_origin
from tests.benchmarks.nab import Corpus, datasets_dir, load_corpus, run_detector, score_detector
from tests.benchmarks.nab_baselines import seasonal_zscore, windowed_gaussian

ROOT = datasets_dir()
SITES = int(os.environ.get("BEACON_BENCH_SITES", "10000"))
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
pytestmark = pytest.mark.skipif(ROOT is None and not os.environ.get("CI"), reason="shared/datasets not present")


def _row(name: str, scores: list[float], note: str = "") -> str:
    return f"  {name:<52}" + "".join(f"{s:>9.2f}" for s in scores) + (f"   {note}" if note else "")


def _artime(root: Path) -> dict[str, np.ndarray]:
    rows: dict[str, list[float]] = {}
    with gzip.open(root / "nab" / "results" / "ARTime_anomaly_scores.csv.gz", "rt") as handle:
        reader = csv.reader(handle)
        next(reader)
        for name, _, score in reader:
            rows.setdefault(name, []).append(float(score))
    return {name: np.asarray(scores) for name, scores in rows.items()}


def _ours(corpus: Corpus) -> dict[str, np.ndarray]:
    return {f.name: np.asarray(score_rows([datetime.fromisoformat(t) for t in f.timestamps], list(f.values)))
            for f in corpus.files}


def test_nab_scores() -> None:
    """Print the NAB table; the scorer must reproduce the fixture's published scores first."""
    assert ROOT is not None
    corpus = load_corpus(ROOT / "nab")
    published = json.loads((ROOT / "nab" / "results" / "shared_subset_scores.json").read_text())["detectors"]
    print(f"\nNAB v1.1, {len(corpus.files)} files, {corpus.n_windows} windows"
          f"{'':<8}standard   low FP   low FN")
    fixture = score_detector(corpus, _artime(ROOT),
                             {p: published["ARTime"][p]["published_threshold"] for p in PROFILES})
    expected = [published["ARTime"][p]["at_published_threshold"] for p in PROFILES]
    got = [fixture[p].score for p in PROFILES]
    print(_row("ARTime output, published thresholds", got, f"published {expected}"))
    assert [round(s, 2) for s in got] == expected
    for name in ("contextOSE", "numenta", "knncad", "twitterADVec", "windowedGaussian"):
        print(_row(f"{name} (published, rescored on this copy)",
                   [published[name][p]["at_published_threshold"] for p in PROFILES]))
    started = time.perf_counter()
    runs = {
        "baseline: windowed Gaussian (this run)": run_detector(corpus, windowed_gaussian),
        "baseline: seasonal z-score (this run)": run_detector(corpus, seasonal_zscore),
    }
    baseline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    runs["compute detector (this run)"] = _ours(corpus)
    ours_seconds = time.perf_counter() - started
    for name, scores in runs.items():
        result = score_detector(corpus, scores)
        print(_row(name, [result[p].score for p in PROFILES],
                   "thresholds " + "/".join(f"{result[p].threshold:.4f}" for p in PROFILES)))
    rows = sum(len(f.values) for f in corpus.files)
    print(f"  detector: {rows:,} rows in {ours_seconds:.1f} s ({1e6 * ours_seconds / rows:.1f} us a row); "
          f"both baselines {baseline_seconds:.1f} s")


def test_forecast_accuracy() -> None:
    """Print MASE, relative MAE and interval coverage per series and pooled."""
    assert ROOT is not None

    def forecaster(days: list[date], values: list[float], horizon: int
                   ) -> list[tuple[float, float, float, float, float]]:
        return [(r.yhat, r.lower_80, r.upper_80, r.lower_95, r.upper_95)
                for r in forecast_daily(days, values, horizon)]

    print("\nForecast, rolling origin (8 origins, 30-day horizon)       MASE  relMAE  cover80  cover95")
    evaluations = []
    for name, (days, values) in load_series(ROOT).items():
        evaluation = rolling_origin(days, values, forecaster)
        evaluations.append(evaluation)
        print(f"  {name:<54}{evaluation.mase:6.3f}{evaluation.relative_mae:8.3f}"
              f"{100 * evaluation.coverage_80:8.1f} %{100 * evaluation.coverage_95:7.1f} %")
    print(f"  {'mean of the three series':<54}{statistics.fmean(e.mase for e in evaluations):6.3f}"
          f"{statistics.fmean(e.relative_mae for e in evaluations):8.3f}"
          f"{100 * statistics.fmean(e.coverage_80 for e in evaluations):8.1f} %"
          f"{100 * statistics.fmean(e.coverage_95 for e in evaluations):7.1f} %")


_WEB_HOURLY = DetectorConfig(season=24, counts=True, learning=336, refractory=24, weekly_gamma=0.003)


def _resume(blob: bytes, config: DetectorConfig) -> OnlineDetector:
    detector = load_state(blob, config)
    assert detector is not None
    return detector


def _warm_state(hours: int = 24 * 200) -> bytes:
    """A site's detector after 200 days of hourly visitors, its history window full (what the pass loads and stores)."""
    rng = np.random.default_rng(7)
    detector = OnlineDetector(_WEB_HOURLY)
    for hour in range(hours):
        rate = 20 + 15 * np.sin((hour % 24 - 8) / 24 * 2 * np.pi)
        detector.update(float(rng.poisson(rate)), hour)
    return dump_state(detector)


def test_hourly_cost() -> None:
    """Print the time to score one hourly point and the hourly pass over many sites, with the baseline."""
    state = _warm_state()
    values = np.random.default_rng(11).poisson(20, SITES).astype(float)
    hour = 24 * 200
    states = [state] * SITES

    config = _WEB_HOURLY
    started = time.perf_counter()
    stored = [dump_state(_resume(s, config)) for s in states]
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    stored = []
    for blob, value in zip(states, values, strict=True):
        detector = _resume(blob, config)
        detector.update(float(value), hour)
        stored.append(dump_state(detector))
    elapsed = time.perf_counter() - started

    single = []
    for value in values[:200]:
        started = time.perf_counter()
        detector = _resume(state, config)
        detector.update(float(value), hour)
        dump_state(detector)
        single.append(time.perf_counter() - started)
    print(f"\nHourly pass: {SITES:,} sites in {elapsed:.2f} s (baseline, state round-trip only: {baseline:.2f} s); "
          f"one point p50 {1e3 * statistics.median(single):.2f} ms, max {1e3 * max(single):.2f} ms; "
          f"state {len(state) / 1024:.1f} KiB a site ({len(state) * SITES / 2**20:.0f} MiB for {SITES:,})")
    assert len(stored) == SITES


def test_anomaly_rule_replay_cost() -> None:
    """Print the compute side of one anomaly alert rule's hourly check as the integrations pass makes it: the
    detector replayed over 31 days of hourly points (no stored state), through the service's own logic."""
    rng = np.random.default_rng(13)
    hours = 31 * 24
    start = datetime(2026, 1, 1)
    stamps = [start + timedelta(hours=h) for h in range(hours)]
    labels = [f"{s:%Y-%m-%d %H}:00:00" for s in stamps]
    request = DetectRequest(site_id="bench.example", date_range=[stamps[0].date(), stamps[-1].date()])
    rules = max(1, SITES // 10)
    series = [[float(v) for v in rng.poisson(20 + 15 * np.sin((np.arange(hours) % 24 - 8) / 24 * 2 * np.pi))]
              for _ in range(20)]
    started = time.perf_counter()
    for n in range(rules):
        detect_series(request, labels, stamps, series[n % len(series)])
    elapsed = time.perf_counter() - started
    print(f"\nAnomaly rules, stateless replay of {hours} hourly points: {rules:,} rules in {elapsed:.2f} s "
          f"({1e3 * elapsed / rules:.2f} ms a rule; {SITES:,} rules would take {elapsed / rules * SITES:.0f} s "
          f"of one core), against one stored-state point above")


def test_anomaly_rule_stored_state_cost(redis_server: Redis) -> None:
    """Print the compute side of the hourly pass of ``SITES`` anomaly rules with stored detector state: each
    rule's state (200 days learnt, the likelihood's history full: the largest it gets) read from Redis, the new
    hour scored, the state written back; the same-run baseline is the Redis GET and SET of the same bytes."""
    rng = np.random.default_rng(17)
    hours = 24 * 200
    start = datetime(2026, 1, 1)
    target = start + timedelta(hours=hours)
    blobs = []
    for variant in range(10):
        detector = OnlineDetector(hourly.CONFIG)
        for h in range(hours):
            rate = 20 + 15 * np.sin((h % 24 - 8) / 24 * 2 * np.pi) + variant
            scored = detector.update(float(rng.poisson(rate)), hourly.position_of(start + timedelta(hours=h)))
        blobs.append(hourly._ENCODER.encode(hourly.StoredHour(
            hourly.position_of(target) - 1, 0.0, scored.score, scored.expected, scored.expected_low,
            scored.expected_high, scored.surprise, scored.novelty, dump_state(detector))))
    day_rows = [{"dimensions": [f"{target:%Y-%m-%d} {h:02d}:00:00"], "metrics": [int(v)]}
                for h, v in enumerate(rng.poisson(20, 24))]

    async def fetch(first: object, last: object) -> list[dict[str, object]]:
        return day_rows

    async def run() -> tuple[float, float, dict[str, int]]:
        client = aioredis.Redis.from_url(redis_server.url(7))
        keys = [f"bench:compute:detector:site{n}.example:visitors" for n in range(SITES)]
        limit = (await client.config_get("maxmemory"))["maxmemory"]
        try:
            await client.flushdb()
            await client.config_set("maxmemory", "0")  # the test server's 512 MiB limit; production: docs/compute.md
            for n, key in enumerate(keys):
                await client.set(key, blobs[n % len(blobs)])
            started = time.perf_counter()
            for key in keys:
                await client.set(key, await client.get(key) or b"", ex=hourly.STATE_TTL_S)
            baseline = time.perf_counter() - started
            outcomes: dict[str, int] = {}
            started = time.perf_counter()
            for n, key in enumerate(keys):
                answer = await hourly.detect_hour(client, key, DetectHourRequest(f"site{n}.example", target), fetch)
                outcomes[answer.state] = outcomes.get(answer.state, 0) + 1
            elapsed = time.perf_counter() - started
        finally:
            await client.flushdb()
            await client.config_set("maxmemory", limit)
            await client.aclose()
        return elapsed, baseline, outcomes

    elapsed, baseline, outcomes = asyncio.run(run())
    assert {"advanced": SITES} == outcomes
    size = statistics.fmean(len(b) for b in blobs)
    print(f"\nAnomaly rules, stored state in Redis: {SITES:,} rules' hourly pass in {elapsed:.2f} s "
          f"({1e3 * elapsed / SITES:.2f} ms a rule; baseline, Redis GET+SET of the state only: {baseline:.2f} s); "
          f"state {size / 1024:.1f} KiB a rule after 200 days ({size * SITES / 2**20:.0f} MiB for {SITES:,})")
