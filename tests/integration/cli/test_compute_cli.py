"""``beacon compute detect`` on a Numenta Anomaly Benchmark file, as the executable a user runs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from services.compute.batch import score_rows


def _datasets() -> Path | None:
    """``$BEACON_DATASETS`` or a ``shared/datasets`` next to the checkout (as the benchmarks find it)."""
    candidates = [Path(os.environ["BEACON_DATASETS"])] if os.environ.get("BEACON_DATASETS") else []
    candidates += [parent / "shared" / "datasets" for parent in Path(__file__).resolve().parents]
    return next((c for c in candidates if (c / "nab" / "data").is_dir()), None)


ROOT = _datasets()
NAB_FILE = "realTraffic/speed_7578.csv"


@pytest.mark.skipif(ROOT is None, reason="shared/datasets not present")
def test_detect_prints_a_score_per_row_of_a_nab_file() -> None:
    """Every row of the NAB file comes back in order with its value and a score in [0, 1] - the scores the NAB
    benchmark scores - and some rows after the probationary period score above 0."""
    assert ROOT is not None
    path = ROOT / "nab" / "data" / NAB_FILE
    done = subprocess.run([str(Path(sys.prefix) / "bin" / "beacon"), "compute", "detect", "--csv", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert (0, "") == (done.returncode, done.stderr)
    with path.open(newline="") as handle:
        given = list(csv.reader(handle))[1:]
    printed = list(csv.reader(done.stdout.splitlines()))
    assert ["timestamp", "value", "anomaly_score"] == printed[0]
    assert [row[0] for row in given] == [row[0] for row in printed[1:]]
    assert [float(row[1]) for row in given] == [float(row[1]) for row in printed[1:]]
    scores = [float(row[2]) for row in printed[1:]]
    expected = score_rows([datetime.fromisoformat(row[0]) for row in given], [float(row[1]) for row in given])
    assert [round(s, 6) for s in expected] == scores
    assert all(0.0 <= s <= 1.0 for s in scores) and max(scores) >= 0.5
