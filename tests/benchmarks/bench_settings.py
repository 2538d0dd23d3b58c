"""Start-up cost of Beacon's settings: importing the settings module, and building the settings from the
environment, each next to a baseline measured in the same run.

- import: a fresh interpreter that imports ``app.core.settings`` against one that only starts (``pass``).
- load: ``load_settings()`` on a complete environment, per call, against building the same frozen dataclasses
  from already-parsed values (what any loader must at least do).

Prints figures; asserts nothing about speed. Run: ``make bench PYTEST_ARGS=tests/benchmarks/bench_settings.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

from app.core.settings import Settings, load_settings

ENVIRONMENT = {
    "BEACON_DATABASE_URL": "postgresql://beacon:secret@127.0.0.1:5432/beacon",
    "BEACON_REDIS_URL": "redis://127.0.0.1:6379/0",
    "BEACON_SECRET_KEY": "s" * 48,
    "BEACON_INTERNAL_TOKEN": "t" * 48,
    "BEACON_INGEST_BATCH_SIZE": "500",
    "BEACON_WEBHOOKS_LEASE": "30",
    "BEACON_WS_HEARTBEAT_INTERVAL": "20",
}
PROCESSES = 15
CALLS = 2000


def process_seconds(code: str) -> float:
    """Median wall time of a fresh interpreter running ``code``."""
    times = []
    for _ in range(PROCESSES):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_call_us(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        call()
    return (time.perf_counter() - start) / CALLS * 1e6


def rebuild(value: Any) -> Any:
    """The same dataclasses built again from their values: the floor of any loader."""
    if is_dataclass(value) and not isinstance(value, type):
        return type(value)(**{f.name: rebuild(getattr(value, f.name)) for f in fields(value) if f.init})
    return value


def test_settings_start_up() -> None:
    """Prints the import and load cost of the settings with their same-run baselines."""
    bare = process_seconds("pass")
    imported = process_seconds("import app.core.settings")
    settings: Settings = load_settings(ENVIRONMENT)
    load = per_call_us(lambda: load_settings(ENVIRONMENT))
    floor = per_call_us(lambda: rebuild(settings))
    print(f"\ninterpreter start (baseline): {bare * 1000:.1f} ms; import app.core.settings: {imported * 1000:.1f} ms "
          f"(+{(imported - bare) * 1000:.1f} ms)")
    print(f"dataclasses rebuilt from values (baseline): {floor:.1f} µs; load_settings(): {load:.1f} µs per call")
