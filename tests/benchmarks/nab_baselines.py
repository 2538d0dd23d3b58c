"""Two baseline detectors for the NAB benchmark, written for comparison with the compute service's detector.

- **Windowed Gaussian** (NAB's ``windowedGaussian`` idea: the published 39.6 on the full corpus): the mean and
  standard deviation of the last ``window`` points, refreshed every ``step`` points; a point's score is
  ``1 - P(|Z| > |z|)`` two-sided, i.e. how far into the tail it lies.
- **Seasonal z-score**: the point against the points at the same time of day (half an hour either side) on the
  previous ``days`` days, ``|z|`` mapped to [0, 1] by ``|z| / (|z| + 4)`` (monotone, so the threshold sweep is
  unaffected, and not saturated at large ``|z|`` as ``erf`` is).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt
from scipy.special import erf

from tests.benchmarks.nab import NabFile


def _tail_score(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(erf(np.abs(z) / math.sqrt(2.0)), dtype=np.float64)


def points_per_day(timestamps: list[str]) -> int:
    """Points per day from the median step of the first rows (NAB files have gaps, so not their count)."""
    seconds = [datetime.fromisoformat(t).timestamp() for t in timestamps[:500]]
    step = float(np.median(np.diff(seconds)))
    return max(1, round(86400 / step))


def windowed_gaussian(nab_file: NabFile, window: int = 6400, step: int = 100) -> npt.NDArray[np.float64]:
    values = nab_file.values
    scores = np.zeros(len(values))
    mean, std = 0.0, 0.0
    for start in range(0, len(values), step):
        history = values[max(0, start - window):start]
        if len(history) >= 2:
            mean, std = float(history.mean()), float(history.std())
        block = values[start:start + step]
        if std > 0:
            scores[start:start + step] = _tail_score((block - mean) / std)
        elif len(history) >= 2:
            scores[start:start + step] = np.where(block != mean, 1.0, 0.0)
    return scores


def seasonal_zscore(nab_file: NabFile, days: int = 7) -> npt.NDArray[np.float64]:
    values = nab_file.values
    period = points_per_day(nab_file.timestamps)
    scores = np.zeros(len(values))
    for i in range(period * 2, len(values)):
        back = min(days, i // period)
        reach = max(1, period // 48)  # half an hour either side, so that each day gives several points
        same_time = np.concatenate([values[max(0, i - k * period - reach):i - k * period + reach + 1]
                                    for k in range(1, back + 1)])
        if len(same_time) < 2:
            continue
        mean = float(same_time.mean())
        # a floor on the spread: identical past values (flat or square-wave series) would make any change
        # infinitely surprising
        std = max(float(same_time.std()), 0.01 * abs(mean), 1e-6)
        scores[i] = abs(values[i] - mean) / std
    # |z| to [0, 1] monotonically without the saturation of the normal tail: 1 - 1/(1 + |z|/4)
    scores = scores / (scores + 4.0)
    return scores
