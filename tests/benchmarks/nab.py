"""A scorer for the Numenta Anomaly Benchmark (NAB v1.1), written from the description in the data set's README.

Definitions (Lavin & Ahmad 2015, "Evaluating real-time anomaly detection algorithms - the Numenta Anomaly
Benchmark"; NAB's ``nab/sweeper.py``/``scorer.py`` behaviour as described in
``shared/datasets/nab/README.md``):

- each file's first ``P = min(floor(0.15 n), 750)`` rows are probationary and ignored by the scorer;
- a row inside a window ``[a, b]`` is worth ``S(-(b - i + 1)/W) / S(-1) * tpWeight`` if detected, a row outside
  every window ``-fpWeight`` before the first window, else ``S((i - b')/(W' - 1)) * fpWeight`` after the most
  recent window ``(b', W')``, with ``S(y) = 2 sigma(-5y) - 1`` (``-1`` for ``y > 3``);
- a detection is ``score >= threshold``; only the best (earliest) detection of a window counts, a window with none
  costs ``-fnWeight``, every detection outside a window is charged;
- one threshold per detector and profile for the whole corpus, found by an exact sweep over the distinct scores
  (ties go to the higher threshold), then ``100 (raw - null) / (perfect - null)`` with
  ``null = -fnWeight * windows`` and ``perfect = tpWeight * windows``.

Pure numpy; no NAB code.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

PROFILES: dict[str, dict[str, float]] = {}  # filled from config/profiles.json by load_profiles()
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def datasets_dir() -> Path | None:
    """The shared data sets: ``$BEACON_DATASETS`` or ``../shared/datasets`` next to the checkout, if present."""
    candidates = [os.environ.get("BEACON_DATASETS", "")]
    root = Path(__file__).resolve().parents[2]
    candidates += [str(parent / "shared" / "datasets") for parent in root.parents]
    for candidate in candidates:
        if candidate and (Path(candidate) / "nab" / "labels").is_dir():
            return Path(candidate)
    return None


def scaled_sigmoid(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """NAB's S(y): ``2 / (1 + exp(5y)) - 1`` for ``y <= 3``, else ``-1``."""
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, value)


@dataclass
class NabFile:
    """One data file: its values, timestamps and windows as (first row, last row) index pairs."""

    name: str
    timestamps: list[str]
    values: npt.NDArray[np.float64]
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        return min(math.floor(0.15 * len(self.values)), 750)


@dataclass
class Weights:
    """Per non-probationary row: what a detection there earns, and the window it falls in (-1 for none)."""

    weight: npt.NDArray[np.float64]
    window: npt.NDArray[np.int64]


@dataclass
class FileResult:
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


@dataclass
class Corpus:
    files: list[NabFile]
    profiles: dict[str, dict[str, float]]
    _weights: dict[tuple[str, str], Weights] = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        return sum(len(f.windows) for f in self.files)

    def weights(self, nab_file: NabFile, profile: str) -> Weights:
        key = (nab_file.name, profile)
        if key not in self._weights:
            self._weights[key] = row_weights(nab_file, self.profiles[profile])
        return self._weights[key]


def load_corpus(root: Path, only: Iterable[str] | None = None) -> Corpus:
    """Read ``labels/combined_windows.json``, the data files it names and ``config/profiles.json``."""
    windows_by_file: dict[str, list[list[str]]] = json.loads((root / "labels" / "combined_windows.json").read_text())
    wanted = set(only) if only is not None else None
    files = []
    for name in sorted(windows_by_file):
        if wanted is not None and name not in wanted:
            continue
        timestamps: list[str] = []
        values: list[float] = []
        with (root / "data" / name).open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                timestamps.append(row[0])
                values.append(float(row[1]))
        first_row: dict[str, int] = {}
        for index, stamp in enumerate(timestamps):
            first_row.setdefault(stamp, index)
        spans = [(first_row[start[:19]], first_row[end[:19]]) for start, end in windows_by_file[name]]
        files.append(NabFile(name, timestamps, np.asarray(values, dtype=np.float64), spans))
    raw_profiles = json.loads((root / "config" / "profiles.json").read_text())
    profiles = {name: dict(raw_profiles[name]["CostMatrix"]) for name in PROFILE_NAMES}
    return Corpus(files, profiles)


def row_weights(nab_file: NabFile, cost: Mapping[str, float]) -> Weights:
    """The weight each non-probationary row would earn as a detection, and its window index (-1 outside)."""
    n = len(nab_file.values)
    p = nab_file.probation
    index = np.arange(n, dtype=np.float64)
    weight = np.full(n, -1.0 * cost["fpWeight"])
    window = np.full(n, -1, dtype=np.int64)
    tp_unit = float(scaled_sigmoid(np.array([-1.0]))[0])
    for number, (a, b) in enumerate(nab_file.windows):
        width = b - a + 1
        inside = slice(a, b + 1)
        y = -(b - index[inside] + 1) / width
        weight[inside] = scaled_sigmoid(y) / tp_unit * cost["tpWeight"]
        window[inside] = number
        following = nab_file.windows[number + 1][0] if number + 1 < len(nab_file.windows) else n
        after = slice(b + 1, following)
        y_after = (index[after] - b) / (width - 1)
        weight[after] = scaled_sigmoid(y_after) * cost["fpWeight"]
    return Weights(weight[p:], window[p:])


def file_result(corpus: Corpus, nab_file: NabFile, scores: npt.NDArray[np.float64], threshold: float,
                profile: str) -> FileResult:
    """A file's raw score and row counts at one threshold (``score >= threshold`` detects)."""
    cost = corpus.profiles[profile]
    w = corpus.weights(nab_file, profile)
    detected = scores[nab_file.probation:] >= threshold
    inside = w.window >= 0
    total = 0.0
    for number in range(len(nab_file.windows)):
        hits = np.flatnonzero(detected & (w.window == number))
        total += float(w.weight[hits[0]]) if hits.size else -cost["fnWeight"]
    total += float(w.weight[detected & ~inside].sum())
    return FileResult(
        score=total,
        tp=int((detected & inside).sum()),
        tn=int((~detected & ~inside).sum()),
        fp=int((detected & ~inside).sum()),
        fn=int((~detected & inside).sum()),
        total=len(w.weight),
    )


def normalise(corpus: Corpus, raw: float, profile: str) -> float:
    cost = corpus.profiles[profile]
    null = -cost["fnWeight"] * corpus.n_windows
    perfect = cost["tpWeight"] * corpus.n_windows
    return 100.0 * (raw - null) / (perfect - null)


def sweep(corpus: Corpus, scores: Mapping[str, npt.NDArray[np.float64]], profile: str) -> tuple[float, float]:
    """The corpus-wide threshold with the highest raw score, and that score (exact sweep, ties to the higher)."""
    cost = corpus.profiles[profile]
    pooled_scores, pooled_weights, pooled_windows = [], [], []
    offset = 0
    for nab_file in corpus.files:
        w = corpus.weights(nab_file, profile)
        pooled_scores.append(np.asarray(scores[nab_file.name], dtype=np.float64)[nab_file.probation:])
        pooled_weights.append(w.weight)
        pooled_windows.append(np.where(w.window >= 0, w.window + offset, -1))
        offset += len(nab_file.windows)
    all_scores = np.concatenate(pooled_scores)
    all_weights = np.concatenate(pooled_weights)
    all_windows = np.concatenate(pooled_windows)
    order = np.argsort(-all_scores, kind="stable")
    best_window = np.full(offset, -cost["fnWeight"])
    window_sum = -cost["fnWeight"] * offset
    fp_sum = 0.0
    best_threshold, best_score = 1.1, window_sum
    previous: float | None = None
    for row in order.tolist():
        value = float(all_scores[row])
        if previous is not None and value != previous:
            current = window_sum + fp_sum
            if current > best_score:
                best_threshold, best_score = previous, current
        previous = value
        window = int(all_windows[row])
        weight = float(all_weights[row])
        if window < 0:
            fp_sum += weight
        elif weight > best_window[window]:
            window_sum += weight - best_window[window]
            best_window[window] = weight
    if previous is not None and window_sum + fp_sum > best_score:
        best_threshold, best_score = previous, window_sum + fp_sum
    return best_threshold, best_score


@dataclass
class ProfileScore:
    profile: str
    threshold: float
    raw: float
    score: float


def score_detector(corpus: Corpus, scores: Mapping[str, npt.NDArray[np.float64]],
                   thresholds: Mapping[str, float] | None = None) -> dict[str, ProfileScore]:
    """Normalised NAB scores per profile: at the given thresholds, or at the sweep's optimum."""
    results = {}
    for profile in PROFILE_NAMES:
        if thresholds is not None:
            threshold = thresholds[profile]
            raw = sum(file_result(corpus, f, np.asarray(scores[f.name]), threshold, profile).score
                      for f in corpus.files)
        else:
            threshold, raw = sweep(corpus, scores, profile)
        results[profile] = ProfileScore(profile, threshold, raw, normalise(corpus, raw, profile))
    return results


def run_detector(corpus: Corpus, detector: Callable[[NabFile], npt.NDArray[np.float64]]
                 ) -> dict[str, npt.NDArray[np.float64]]:
    return {f.name: np.asarray(detector(f), dtype=np.float64) for f in corpus.files}
