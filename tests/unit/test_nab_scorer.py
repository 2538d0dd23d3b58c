"""The NAB scorer in tests/benchmarks reproduces NAB's published scores of ARTime's shipped output."""

from __future__ import annotations

import csv
import gzip
import os

import numpy as np
import pytest

from tests.benchmarks.nab import Corpus, datasets_dir, file_result, load_corpus, scaled_sigmoid, score_detector

ROOT = datasets_dir()
pytestmark = pytest.mark.skipif(ROOT is None and not os.environ.get("CI"), reason="shared/datasets not present")
ARTIME_THRESHOLDS = {"standard": 0.317486, "reward_low_FP_rate": 0.317585, "reward_low_FN_rate": 0.317486}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    assert ROOT is not None
    return load_corpus(ROOT / "nab")


@pytest.fixture(scope="module")
def artime() -> dict[str, np.ndarray]:
    assert ROOT is not None
    rows: dict[str, list[float]] = {}
    with gzip.open(ROOT / "nab" / "results" / "ARTime_anomaly_scores.csv.gz", "rt") as handle:
        reader = csv.reader(handle)
        next(reader)
        for name, _, score in reader:
            rows.setdefault(name, []).append(float(score))
    return {name: np.asarray(scores) for name, scores in rows.items()}


def test_scaled_sigmoid_reference_values() -> None:
    """S(y) takes the README's reference values."""
    got = scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.0, 3.5]))
    assert np.allclose(got, [0.98661, 0.84828, 0.0, -0.98661, -0.9999994, -1.0], atol=1e-5)


def test_per_file_scores_match_published(corpus: Corpus, artime: dict[str, np.ndarray]) -> None:
    """Every ARTime row of per_file_scores.csv comes out to 1e-9 with identical counts."""
    assert ROOT is not None
    by_name = {f.name: f for f in corpus.files}
    with (ROOT / "nab" / "results" / "per_file_scores.csv").open(newline="") as handle:
        published = [row for row in csv.DictReader(handle) if row["Detector"] == "ARTime"]
    assert len(published) == 3 * 34
    for row in published:
        nab_file = by_name[row["File"]]
        got = file_result(corpus, nab_file, artime[nab_file.name], float(row["Threshold"]), row["Profile"])
        expected = tuple(int(row[key]) for key in ("TP", "TN", "FP", "FN", "Total_Count"))
        assert (got.tp, got.tn, got.fp, got.fn, got.total) == expected, row
        assert got.score == pytest.approx(float(row["Score"]), abs=1e-9), row


def test_normalised_totals_at_published_thresholds(corpus: Corpus, artime: dict[str, np.ndarray]) -> None:
    """At ARTime's published thresholds the 34-file totals normalise to 80.37 / 71.61 / 85.42."""
    scores = score_detector(corpus, artime, ARTIME_THRESHOLDS)
    assert [round(s.raw, 4) for s in scores.values()] == [40.7012, 28.9567, 37.7012]
    assert [round(s.score, 2) for s in scores.values()] == [80.37, 71.61, 85.42]


def test_sweep_finds_the_subset_optimum(corpus: Corpus, artime: dict[str, np.ndarray]) -> None:
    """The exact sweep finds shared_subset_scores.json's thresholds and scores."""
    scores = score_detector(corpus, artime)
    assert [s.threshold for s in scores.values()] == [0.290523, 0.317585, 0.290523]
    assert [round(s.score, 2) for s in scores.values()] == [80.42, 71.61, 85.46]


def test_greater_or_equal_detects(corpus: Corpus, artime: dict[str, np.ndarray]) -> None:
    """A score equal to the threshold is a detection: '>' would lose the row that scores exactly 0.317486."""
    strict = score_detector(corpus, {k: np.where(v == 0.317486, 0.317485, v) for k, v in artime.items()},
                            ARTIME_THRESHOLDS)
    assert round(strict["standard"].score, 2) != 80.37

