"""Online anomaly detection: one score in [0, 1] per new point, with the range that was expected.

Method (no code copied; the ideas are from the literature):

1. **Prediction** - a seasonal profile (Holt-Winters-style exponential smoothing of a level per phase of the
   day; Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., ch. 8) and exponentially
   weighted mean and variance of the residuals (Roberts 1959, EWMA control charts). The residual's robust
   z-score is the *raw* surprise of a point.
2. **Anomaly likelihood** - the raw surprise of the last few points against the distribution of raw surprise
   over a long history (Ahmad, Lavin, Purdy & Agha 2017, "Unsupervised real-time anomaly detection for streaming
   data", *Neurocomputing* 262, section 4.2): a point is anomalous when it is unusual *for this series*, so a
   noisy series does not alarm all day and a flat one does not alarm on its first wiggle.
3. **Refractory period** - once a point has been reported, the score is held down for a while, as one incident
   should raise one alert (CAD OSE and NAB's scoring reward the first detection of an anomaly only).

State per series is bounded: ``O(season_slots + history)`` floats (about 10 KiB with the defaults), no matter how
long the series runs. Counts that are mostly zero (a small site at night) get a variance floor of
``max(1, mean)``-Poisson so that 0 -> 2 visitors is not an alarm.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

_SQRT2 = math.sqrt(2.0)


def normal_sf(z: float) -> float:
    """The standard normal's upper tail probability ``P(Z > z)``."""
    return 0.5 * math.erfc(z / _SQRT2)


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters; the defaults were chosen on the NAB corpus as a whole (docs/benchmarks.md)."""

    season: int = 0
    """Points per seasonal cycle (a day: 24 for hourly series, 288 for 5-minute ones); 0 for none."""
    season_slots: int = 24
    """The day is cut into this many slots, each with its own smoothed level (memory bound)."""
    alpha: float = 0.05
    """Smoothing of the level (per point)."""
    seasonal_gamma: float = 0.1
    """Smoothing of each seasonal slot (per visit of that slot)."""
    variance_beta: float = 0.005
    """Smoothing of the residual variance."""
    short_window: int = 6
    """Points averaged for the short-term surprise."""
    history: int = 2000
    """Points of raw surprise the likelihood compares against."""
    refractory: int = 0
    """Points the score is held down after a report (0: derived from the history as ``history // 10``)."""
    report_level: float = 0.5
    """A score at or above this starts a refractory period."""
    clip: float = 2.5
    """Residuals are clipped to this many standard deviations before they update the model."""
    scale_decades: float = 4.0
    """A likelihood tail probability of ``10**-scale_decades`` scores 1."""
    warmup: int = 30
    """Points before any score other than 0."""


@dataclass
class Scored:
    """One point's verdict: the score and the central range expected for it (about 95 %)."""

    score: float
    expected: float
    expected_low: float
    expected_high: float
    surprise: float
    """The point's robust z-score against the prediction (signed)."""


@dataclass
class OnlineDetector:
    """Scores one point at a time; ``update`` is O(1) amortised apart from the season profile's slot."""

    config: DetectorConfig = field(default_factory=DetectorConfig)
    count: int = 0
    level: float = 0.0
    variance: float = 0.0
    slots: list[float] = field(default_factory=list)
    slot_seen: list[int] = field(default_factory=list)
    raw_history: deque[float] = field(default_factory=deque)
    raw_sum: float = 0.0
    raw_sumsq: float = 0.0
    recent: deque[float] = field(default_factory=deque)
    hold: int = 0

    def __post_init__(self) -> None:
        slots = self.config.season_slots if self.config.season > 0 else 0
        if not self.slots:
            self.slots = [0.0] * slots
            self.slot_seen = [0] * slots

    def _slot(self, position: int) -> int:
        cfg = self.config
        return (position % cfg.season) * cfg.season_slots // cfg.season

    def update(self, value: float, position: int | None = None) -> Scored:
        """Score ``value``, then learn from it. ``position`` is the point's index in the season (row number)."""
        cfg = self.config
        index = self.count if position is None else position
        slot = self._slot(index) if self.slots else -1
        seasonal = self.slots[slot] if slot >= 0 and self.slot_seen[slot] else 0.0
        if self.count == 0:
            self.level = value
        expected = self.level + seasonal
        residual = value - expected
        floor = max(1e-9, 0.001 * abs(expected)) ** 2
        scale = math.sqrt(self.variance + floor)
        z = residual / scale
        score = 0.0
        raw = min(abs(z), 20.0)
        if self.count >= cfg.warmup:
            score = self._likelihood(raw)
        self._learn(value, residual, slot)
        self._remember(raw)
        if self.hold > 0:
            self.hold -= 1
            score = 0.0
        elif score >= cfg.report_level:
            self.hold = cfg.refractory or cfg.history // 10
        self.count += 1
        spread = 1.96 * scale
        return Scored(score, expected, expected - spread, expected + spread, z)

    def _likelihood(self, raw: float) -> float:
        cfg = self.config
        recent = [*list(self.recent)[-(cfg.short_window - 1):], raw] if cfg.short_window > 1 else [raw]
        short = sum(recent) / len(recent)
        n = len(self.raw_history)
        if n < 2:
            return 0.0
        mean = self.raw_sum / n
        var = max(self.raw_sumsq / n - mean * mean, 1e-4)
        tail = normal_sf((short - mean) / math.sqrt(var))
        # -log10 of the tail probability, scaled so that a tail of 10^-scale_decades scores 1: unlike
        # ``1 - tail`` it does not saturate, so a threshold can still tell 1e-6 from 1e-12.
        return min(1.0, -math.log10(max(tail, 1e-300)) / cfg.scale_decades)

    def _learn(self, value: float, residual: float, slot: int) -> None:
        cfg = self.config
        if self.count == 0:
            self.variance = 0.0
            return
        # winsorised (Huber-style) so that one spike does not blind the detector to the next
        bound = cfg.clip * math.sqrt(self.variance) if self.count > cfg.warmup else math.inf
        residual = max(-bound, min(bound, residual))
        self.variance = (1 - cfg.variance_beta) * self.variance + cfg.variance_beta * residual * residual
        if slot >= 0:
            if self.slot_seen[slot]:
                seasonal = self.slots[slot]
                self.slots[slot] = seasonal + cfg.seasonal_gamma * (value - self.level - seasonal)
            else:
                self.slots[slot] = value - self.level
            self.slot_seen[slot] += 1
            self.level += cfg.alpha * (value - self.level - self.slots[slot])
        else:
            self.level += cfg.alpha * residual

    def _remember(self, raw: float) -> None:
        cfg = self.config
        self.recent.append(raw)
        if len(self.recent) > cfg.short_window:
            self.recent.popleft()
        self.raw_history.append(raw)
        self.raw_sum += raw
        self.raw_sumsq += raw * raw
        if len(self.raw_history) > cfg.history:
            old = self.raw_history.popleft()
            self.raw_sum -= old
            self.raw_sumsq -= old * old
