"""Online anomaly detection: one score in [0, 1] per new point, with the range that was expected.

Two views of each point are averaged and a third can override them (no code copied; the ideas are from the literature):

1. **Statistical surprise** - the point against a prediction: a level and a seasonal profile by exponential
   smoothing (Holt-Winters; Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., ch. 8) and an
   exponentially weighted variance of the residuals (EWMA control charts, Roberts 1959), updated with residuals
   winsorised at ``clip`` deviations (Huber) so one spike does not blind the detector to the next. The residual's
   ``|z|``, capped at ``surprise_cap`` (one burst, however tall, weighs like a few moderately unusual points: a
   winsorised mean, as in Huber's M-estimators), averaged over the last ``short_window`` points is then judged
   against the distribution of single points' ``|z|`` over the last ``history`` points - the *anomaly likelihood* of
   Ahmad, Lavin, Purdy & Agha 2017 ("Unsupervised real-time anomaly detection for streaming data", *Neurocomputing*
   262, section 4.2) - and put on a log scale: a point is anomalous when it is unusual *for this series*, so a noisy
   series does not alarm all day and a flat one does not alarm on its first wiggle.
2. **Novelty** - the value is quantised into ``bins`` levels of the range seen so far (plus ``overflow``
   levels on each side for how far a new extreme goes beyond it), and the score is the share of the last
   1..``context`` levels, read as sequences, that have never occurred before. This is the "contextual" idea of
   CAD OSE (Smirnov's entry to the 2016 NAB competition) and of sequence memories such as HTM: a pattern never
   seen is suspect even when its values are not extreme.

3. **Sustained shift** - Page's two-sided CUSUM (Page 1954, "Continuous inspection schemes", *Biometrika* 41;
   Montgomery, *Introduction to Statistical Quality Control*, ch. 9) of the residual's signed ``z`` capped at
   ``surprise_cap``: ``up = max(0, up + z - shift_allowance)``, ``down = max(0, down - z - shift_allowance)``.
   ``shift_weight * min(1, max(up, down) / shift_limit)`` replaces the mean of the two views above when it is
   larger. Only a long run of points beyond ``shift_allowance`` deviations in one direction fills it - a level
   shift or a missing daily rise that the smoothing follows too slowly to be one short burst, but too fast for
   the short-term mean to stay unusual. Both sums restart at 0 after a report and during the refractory period.

A point whose score reaches ``report_level`` starts a **refractory period** of ``refractory`` points
during which the score is 0: one incident, one alert (NAB also credits only the first detection in a window).

State per series is bounded: the seasonal profile (``season_slots`` floats), a ring of ``history`` floats, and
at most ``max_contexts`` remembered sequences per length - about 250 KiB with the defaults at worst, about 60 KiB
for an hourly web series after 200 days (:func:`dump_state`'s MessagePack; :func:`load_state` resumes it). For
counts (``counts=True``) the variance has a Poisson floor of ``max(1, expected)``, so a small site's 0 -> 2
visitors at night is no surprise.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from dataclasses import dataclass, field

import msgspec

_SQRT2 = math.sqrt(2.0)


def normal_sf(z: float) -> float:
    """The standard normal's upper tail probability ``P(Z > z)``."""
    return 0.5 * math.erfc(z / _SQRT2)


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters; the defaults were chosen on the NAB corpus as a whole (docs/benchmarks.md)."""

    season: int = 0
    """Points per seasonal cycle (24 for hourly series, 7 for daily ones, 288 for 5-minute ones); 0 for none."""
    season_slots: int = 24
    """The cycle is cut into at most this many slots, each with its own smoothed level (memory bound)."""
    counts: bool = False
    """Values are counts of events: the variance gets a Poisson floor of ``max(1, expected)``."""
    learning: int = 336
    """Points that only teach the detector (score 0); the novelty's value range is learnt over them."""
    weekly_gamma: float = 0.0
    """Smoothing of the weekday offsets added to a daily season (0: no weekly pattern)."""
    alpha: float = 0.05
    """Smoothing of the level (per point)."""
    seasonal_gamma: float = 0.1
    """Smoothing of each seasonal slot (per visit of that slot)."""
    variance_beta: float = 0.005
    """Smoothing of the residual variance."""
    clip: float = 2.5
    """Residuals are clipped to this many standard deviations before they update the variance."""
    short_window: int = 8
    """Points averaged for the short-term surprise."""
    surprise_cap: float = 4.0
    """Each point's ``|z|`` is capped at this before it is averaged and remembered."""
    history: int = 4000
    """Points of surprise the likelihood compares against."""
    scale_decades: float = 4.0
    """A likelihood tail probability of ``10**-scale_decades`` scores 1."""
    bins: int = 10
    """Levels the learnt value range is cut into for the novelty view."""
    context: int = 5
    """Longest sequence of levels the novelty view remembers."""
    overflow: int = 5
    """Levels beyond the range seen so far, on each side: how far a new extreme goes is itself a level."""
    max_contexts: int = 4096
    """Remembered sequences per length; beyond it, the ones seen once are forgotten."""
    novelty_weight: float = 0.5
    """Weight of the novelty view in the score (the statistical view has the rest)."""
    report_level: float = 0.5
    """A score at or above this is reported and starts a refractory period."""
    refractory: int = 100
    """Points the score is held at 0 after a report."""
    shift_allowance: float = 2.5
    """The CUSUM's allowance ``k``: deviations (capped ``|z|``) up to this add nothing to the sums."""
    shift_limit: float = 45.0
    """The CUSUM's decision interval ``h``: a sum of this scores ``shift_weight``."""
    shift_weight: float = 0.6
    """The sustained-shift view's score at ``shift_limit`` (0 turns the view off)."""


@dataclass
class Scored:
    """One point's verdict: the score and the range expected for it (central 95 %)."""

    score: float
    expected: float
    expected_low: float
    expected_high: float
    surprise: float
    """The point's z-score against the prediction (signed)."""
    novelty: float
    """Share of the point's recent level sequences never seen before, in [0, 1]."""


@dataclass
class WindowStats:
    """Mean and variance of the last ``size`` values, by running sums over a ring buffer (O(1) per value).

    Values are kept as 32-bit floats (half the memory and the stored state; a surprise capped at a few units
    needs no more precision), and the sums are of the values as kept, so a resumed state is exact."""

    values: array[float] = field(default_factory=lambda: array("f"))
    start: int = 0
    total: float = 0.0
    squares: float = 0.0

    def push(self, value: float, size: int) -> None:
        if len(self.values) < size:
            self.values.append(value)
            kept = self.values[-1]
        else:
            old = self.values[self.start]
            self.values[self.start] = value
            kept = self.values[self.start]
            self.start = (self.start + 1) % size
            self.total -= old
            self.squares -= old * old
        self.total += kept
        self.squares += kept * kept

    def log_tail(self, value: float, decades: float) -> float:
        """``-log10 P(X > value)`` under a normal fitted to the window, divided by ``decades``, in [0, 1].

        Unlike ``1 - P`` the log does not saturate, so a threshold can still tell a tail of 1e-6 from 1e-12
        (Ahmad et al. 2017 put their likelihood on the same log scale).
        """
        n = len(self.values)
        if n < 2:
            return 0.0
        mean = self.total / n
        deviation = math.sqrt(max(self.squares / n - mean * mean, 1e-4))
        tail = normal_sf((value - mean) / deviation)
        return min(1.0, -math.log10(max(tail, 1e-300)) / decades)


@dataclass
class OnlineDetector:
    """Scores one point at a time in O(context) time; see the module's docstring for the method."""

    config: DetectorConfig = field(default_factory=DetectorConfig)
    count: int = 0
    level: float = 0.0
    variance: float = 0.0
    slots: list[float] = field(default_factory=list)
    slot_seen: list[int] = field(default_factory=list)
    surprise: WindowStats = field(default_factory=WindowStats)
    recent: deque[float] = field(default_factory=deque)
    low: float = math.inf
    high: float = -math.inf
    levels: deque[int] = field(default_factory=deque)
    seen: list[dict[int, int]] = field(default_factory=list)
    hold: int = 0
    learnt: list[float] = field(default_factory=list)
    weekly: list[float] = field(default_factory=lambda: [0.0] * 7)
    shift_up: float = 0.0
    shift_down: float = 0.0

    def __post_init__(self) -> None:
        cfg = self.config
        if cfg.season > 0 and not self.slots:
            slots = min(cfg.season, cfg.season_slots)
            self.slots = [0.0] * slots
            self.slot_seen = [0] * slots
        if not self.seen:
            self.seen = [{} for _ in range(cfg.context)]

    def update(self, value: float, position: int | None = None) -> Scored:
        """Score ``value``, then learn from it.

        Args:
            value: the new observation (finite).
            position: the point's index counted from any fixed origin in steps of the series (e.g. hours
                since the epoch), so that gaps keep the seasonal phase; by default the number of points seen.

        Returns:
            The score in [0, 1] (0 while learning and during a refractory period), the expected value and
            range, the z-score and the novelty.
        """
        cfg = self.config
        index = self.count if position is None else position
        slot = (index % cfg.season) * len(self.slots) // cfg.season if self.slots else -1
        seasonal = self.slots[slot] if slot >= 0 and self.slot_seen[slot] else 0.0
        weekday = (index // cfg.season) % 7 if cfg.weekly_gamma > 0 and cfg.season > 7 else -1
        if weekday >= 0:
            seasonal += self.weekly[weekday]
        if self.count == 0:
            self.level = value
        expected = self.level + seasonal
        residual = value - expected
        floor = max(1.0, expected) if cfg.counts else max(1e-9, 0.001 * abs(expected)) ** 2
        scale = math.sqrt(self.variance + floor)
        z = residual / scale
        raw = min(abs(z), cfg.surprise_cap)
        novelty = self._novelty(value)
        score = 0.0
        if self.count >= cfg.learning:
            window = list(self.recent)[-(cfg.short_window - 1):] if cfg.short_window > 1 else []
            short = (sum(window) + raw) / (len(window) + 1)
            likelihood = self.surprise.log_tail(short, cfg.scale_decades)
            score = cfg.novelty_weight * novelty + (1.0 - cfg.novelty_weight) * likelihood
            capped = max(-cfg.surprise_cap, min(cfg.surprise_cap, z))
            self.shift_up = max(0.0, self.shift_up + capped - cfg.shift_allowance)
            self.shift_down = max(0.0, self.shift_down - capped - cfg.shift_allowance)
            shift = min(1.0, max(self.shift_up, self.shift_down) / cfg.shift_limit)
            score = max(score, cfg.shift_weight * shift)
        self._learn(value, residual, slot, weekday)
        self.recent.append(raw)
        if len(self.recent) > cfg.short_window:
            self.recent.popleft()
        self.surprise.push(raw, cfg.history)
        if self.hold > 0:
            self.hold -= 1
            score = 0.0
            self.shift_up = self.shift_down = 0.0
        elif score >= cfg.report_level:
            self.hold = cfg.refractory
            self.shift_up = self.shift_down = 0.0
        self.count += 1
        spread = 1.96 * scale
        low = max(0.0, expected - spread) if cfg.counts else expected - spread
        return Scored(score, expected, low, expected + spread, z, novelty)

    def _novelty(self, value: float) -> float:
        cfg = self.config
        if self.count < cfg.learning:
            # while learning, the range is still moving: keep the values and remember their sequences once the
            # range is known, so that the memory is in the same levels as what follows
            self.low, self.high = min(self.low, value), max(self.high, value)
            self.learnt.append(value)
            if self.count == cfg.learning - 1:
                for earlier in self.learnt:
                    self._remember(earlier)
                self.learnt.clear()
            return 0.0
        unseen = self._remember(value)
        self.low, self.high = min(self.low, value), max(self.high, value)
        return unseen / cfg.context

    def _remember(self, value: float) -> int:
        """Add the value's level to the recent sequence; how many of its suffixes were never seen before."""
        cfg = self.config
        width = (self.high - self.low) or 1.0
        level = max(-cfg.overflow, min(cfg.bins - 1 + cfg.overflow, math.floor((value - self.low) / width * cfg.bins)))
        self.levels.append(level)
        if len(self.levels) > cfg.context:
            self.levels.popleft()
        # each sequence as one integer (its levels as digits in base bins + 2): compact to keep and to store
        base = cfg.bins + 2 * cfg.overflow
        key = 0
        unseen = 0
        for length, past in enumerate(reversed(self.levels), start=1):
            key = key * base + past + cfg.overflow
            memory = self.seen[length - 1]
            seen = memory.get(key, 0)
            if not seen:
                unseen += 1
                if len(memory) >= cfg.max_contexts:
                    for stale in [k for k, n in memory.items() if n == 1]:
                        del memory[stale]
            memory[key] = seen + 1
        return unseen

    def _learn(self, value: float, residual: float, slot: int, weekday: int = -1) -> None:
        cfg = self.config
        if self.count == 0:
            return
        bound = cfg.clip * math.sqrt(self.variance) if self.count > 30 else math.inf
        clipped = max(-bound, min(bound, residual))
        self.variance = (1 - cfg.variance_beta) * self.variance + cfg.variance_beta * clipped * clipped
        week = self.weekly[weekday] if weekday >= 0 else 0.0
        if slot >= 0:
            if self.slot_seen[slot]:
                seasonal = self.slots[slot]
                self.slots[slot] = seasonal + cfg.seasonal_gamma * (value - self.level - week - seasonal)
            else:
                self.slots[slot] = value - self.level - week
            self.slot_seen[slot] += 1
            if weekday >= 0:
                self.weekly[weekday] = week + cfg.weekly_gamma * (value - self.level - self.slots[slot] - week)
            self.level += cfg.alpha * (value - self.level - self.slots[slot] - week)
        else:
            self.level += cfg.alpha * residual


class DetectorState(msgspec.Struct, array_like=True):
    """Everything an :class:`OnlineDetector` has learnt, in plain values (MessagePack; no pickle, so whoever can
    write the store cannot make the service run code). ``config`` is kept so a state learnt under other
    parameters is never resumed."""

    config: DetectorConfig
    count: int
    level: float
    variance: float
    slots: list[float]
    slot_seen: list[int]
    surprise: bytes
    """The ring of surprises: 32-bit floats, little-endian."""
    surprise_start: int
    surprise_total: float
    surprise_squares: float
    recent: list[float]
    low: float
    high: float
    levels: list[int]
    seen: list[dict[int, int]]
    hold: int
    learnt: list[float]
    weekly: list[float]
    shift_up: float
    shift_down: float


_STATE_ENCODER = msgspec.msgpack.Encoder()
_STATE_DECODER = msgspec.msgpack.Decoder(DetectorState)


def dump_state(detector: OnlineDetector) -> bytes:
    """The detector's state as MessagePack bytes (see the module's docstring for its size)."""
    d = detector
    ring = d.surprise.values
    if sys.byteorder == "big":
        ring = array("f", ring)
        ring.byteswap()
    return _STATE_ENCODER.encode(DetectorState(
        d.config, d.count, d.level, d.variance, d.slots, d.slot_seen, ring.tobytes(), d.surprise.start,
        d.surprise.total, d.surprise.squares, list(d.recent), d.low, d.high, list(d.levels), d.seen, d.hold,
        d.learnt, d.weekly, d.shift_up, d.shift_down))


def load_state(blob: bytes, config: DetectorConfig) -> OnlineDetector | None:
    """A detector resumed from :func:`dump_state`'s bytes, or None when they are unreadable or were learnt
    under another configuration (the caller then starts afresh)."""
    try:
        s = _STATE_DECODER.decode(blob)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if (s.config != config or len(s.seen) != config.context or len(s.slots) != len(s.slot_seen)
            or len(s.surprise) % 4):
        return None
    ring = array("f")
    ring.frombytes(s.surprise)
    if sys.byteorder == "big":
        ring.byteswap()
    return OnlineDetector(
        config, s.count, s.level, s.variance, s.slots, s.slot_seen,
        WindowStats(ring, s.surprise_start, s.surprise_total, s.surprise_squares),
        deque(s.recent), s.low, s.high, deque(s.levels), s.seen, s.hold, s.learnt, s.weekly,
        s.shift_up, s.shift_down)
