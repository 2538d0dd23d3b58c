"""The detector's sustained-shift view: Page's two-sided CUSUM of the capped residual z."""

from __future__ import annotations

import random

from services.compute.detect import DetectorConfig, OnlineDetector, dump_state, load_state


def test_shift_sums_follow_pages_recursion_and_bound_the_score() -> None:
    """With reports turned off (no resets), after learning ``up``/``down`` follow
    ``max(0, S +- z - k)`` of each point's capped z, the score is at least ``weight * min(1, S / h)``, and a
    state dumped mid-shift resumes its sums."""
    config = DetectorConfig(season=24, learning=200, report_level=2.0)
    detector = OnlineDetector(config)
    rng = random.Random(3)
    up = down = 0.0
    reached = 0.0
    for index in range(900):
        value = 100.0 + 10.0 * (index % 24 > 12) + rng.gauss(0.0, 2.0) - (40.0 if 600 <= index < 700 else 0.0)
        learning = detector.count < config.learning
        scored = detector.update(value, index)
        if learning:
            assert detector.shift_up == detector.shift_down == 0.0
            continue
        z = max(-config.surprise_cap, min(config.surprise_cap, scored.surprise))
        up = max(0.0, up + z - config.shift_allowance)
        down = max(0.0, down - z - config.shift_allowance)
        assert (detector.shift_up, detector.shift_down) == (up, down)
        view = config.shift_weight * min(1.0, max(up, down) / config.shift_limit)
        assert scored.score >= view
        reached = max(reached, view)
        if index == 640:
            resumed = load_state(dump_state(detector), config)
            assert resumed is not None
            assert (resumed.shift_up, resumed.shift_down) == (up, down)
    # the level follows a drop of 20 deviations within tens of points, yet the sum gets the view alone to a report
    assert reached >= 0.5


def test_a_report_and_the_refractory_period_restart_the_sums() -> None:
    """At a report and while the score is held after it the sums are 0; the drop is reported."""
    config = DetectorConfig(season=24, learning=200, refractory=50)
    detector = OnlineDetector(config)
    rng = random.Random(4)
    reports: list[int] = []
    for index in range(800):
        value = 100.0 + rng.gauss(0.0, 2.0) - (40.0 if index >= 600 else 0.0)
        scored = detector.update(value, index)
        if scored.score >= config.report_level:
            reports.append(index)
        if reports and index <= reports[-1] + config.refractory:
            assert detector.shift_up == detector.shift_down == 0.0
    assert any(600 <= index < 620 for index in reports)
