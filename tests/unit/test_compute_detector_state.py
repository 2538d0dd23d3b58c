"""The detector's stored state: resumed, it scores exactly as the detector that never stopped."""

from __future__ import annotations

import random

import msgspec

from services.compute.detect import DetectorConfig, OnlineDetector, dump_state, load_state
from services.compute.logic import detector_for


def test_resumed_detector_scores_like_the_one_that_never_stopped() -> None:
    """Dumped after 800 hourly points (learning over, refractory and memories filled), the resumed detector's
    next 800 verdicts - a spike and its refractory period among them - equal the original's."""
    rng = random.Random(5)
    config = detector_for("hour", 744)
    original = OnlineDetector(config)
    for hour in range(800):
        original.update(float(rng.randint(0, 30)), hour)
    resumed = load_state(dump_state(original), config)
    assert resumed is not None
    verdicts = []
    for hour in range(800, 1600):
        value = 300.0 if hour == 1000 else float(rng.randint(0, 30))
        verdicts.append((original.update(value, hour), resumed.update(value, hour)))
    assert all(a == b for a, b in verdicts)
    assert any(a.score >= 0.5 for a, _ in verdicts)
    assert dump_state(original) == dump_state(resumed)


def test_state_of_another_configuration_or_unreadable_bytes_is_not_resumed() -> None:
    """Bytes that are not a state, or a state learnt under other parameters, give None (start afresh)."""
    detector = OnlineDetector(detector_for("hour", 744))
    for hour in range(50):
        detector.update(float(hour % 7), hour)
    blob = dump_state(detector)
    assert load_state(blob, detector_for("day", 744)) is None
    assert load_state(blob, DetectorConfig(season=24, counts=True)) is None
    assert load_state(b"\x00not a state", detector_for("hour", 744)) is None
    assert load_state(msgspec.msgpack.encode([1, 2, 3]), detector_for("hour", 744)) is None
    assert load_state(b"", detector_for("hour", 744)) is None
