"""Daily forecasts with prediction intervals.

Model: an exponential-smoothing state-space model (ETS: additive errors, damped additive trend, additive weekly
seasonality; Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., sections 8.5-8.7) fitted
by maximum likelihood with statsmodels' ``ETSModel`` on ``log(1 + y)``, so that the weekly pattern is a ratio and
the interval cannot go below zero. Intervals are the model's analytic prediction intervals, back-transformed
(quantiles survive a monotone transform; the point forecast is the median on the original scale).

Missing days are filled by linear interpolation before fitting (the model needs a regular calendar); only the
last ``max_history`` days are used (yearly patterns are not modelled, and fitting time stays bounded).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

CALIBRATION_ORIGINS = 4
"""Earlier origins the intervals are calibrated on (each one more fit)."""
MIN_DAYS = 28
"""Four weeks: fewer days cannot estimate a weekly pattern."""


class ForecastInputError(ValueError):
    """The series cannot be forecast; the message says why."""


@dataclass(frozen=True)
class ForecastDay:
    day: date
    yhat: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float


def regular_daily(days: list[date], values: list[float]) -> tuple[date, np.ndarray]:
    """The series on a full daily calendar from its first day, missing days interpolated linearly.

    Raises:
        ForecastInputError: unsorted or repeated days, negative or non-finite values, too few days.
    """
    if len(days) != len(values):
        raise ForecastInputError("days and values differ in length")
    if len(days) < MIN_DAYS:
        raise ForecastInputError(f"too short: {len(days)} days, at least {MIN_DAYS} are needed")
    for previous, current in itertools.pairwise(days):
        if current <= previous:
            raise ForecastInputError(f"days must be strictly increasing: {current} follows {previous}")
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ForecastInputError("values must be finite numbers (no NaN or infinity)")
    if np.any(array < 0):
        raise ForecastInputError("values must not be negative")
    offsets = np.array([(d - days[0]).days for d in days])
    full = np.interp(np.arange(offsets[-1] + 1), offsets, array)
    return days[0], full


def forecast_daily(days: list[date], values: list[float], horizon: int, max_history: int = 730) -> list[ForecastDay]:
    """Forecast ``horizon`` days after the last one.

    Args:
        days: the observed days, strictly increasing (gaps allowed).
        values: counts per day (visitors, pageviews, conversions), non-negative.
        horizon: days to forecast, 1-366.
        max_history: at most this many recent days are fitted.

    Returns:
        One row per future day: the median forecast and the 80 % and 95 % prediction intervals.

    Raises:
        ForecastInputError: as ``regular_daily``, or a horizon out of range.
    """
    if not 1 <= horizon <= 366:
        raise ForecastInputError(f"horizon must be between 1 and 366 days, not {horizon}")
    first, series = regular_daily(days, values)
    start = max(0, len(series) - max_history)
    history = np.log1p(series[start:])
    last_day = first + timedelta(days=len(series) - 1)
    quantiles = _calibrated(history, horizon)
    rows = []
    for step in range(horizon):
        med, lo80, hi80, lo95, hi95 = (max(0.0, math.expm1(q[step])) for q in quantiles)
        rows.append(ForecastDay(last_day + timedelta(days=step + 1), med, lo80, hi80, lo95, hi95))
    return rows


def _calibrated(history: np.ndarray, horizon: int) -> tuple[np.ndarray, ...]:
    """The forecast with its intervals rescaled so that they would have covered 80 % / 95 % of the recent past.

    Split-conformal calibration for time series (Stankeviciute, Alaa & van der Schaar 2021, "Conformal time-series
    forecasting"): the model is refitted at ``CALIBRATION_ORIGINS`` earlier origins, each of its errors over the
    next ``horizon`` days is divided by the half-width its interval had there, and the interval is scaled by the
    80th (95th) percentile of those ratios. Without enough history the model's own intervals stand.
    """
    mean, lo80, hi80, lo95, hi95 = _fit_and_predict(history, horizon)
    ratios80: list[float] = []
    ratios95: list[float] = []
    step = max(horizon, 14)
    for k in range(1, CALIBRATION_ORIGINS + 1):
        cut = len(history) - k * step
        if cut < 2 * MIN_DAYS:
            break
        actual = history[cut:cut + horizon]
        past = _fit_and_predict(history[:cut], len(actual))
        error = actual - past[0]
        ratios80 += (error / np.where(error >= 0, past[2] - past[0], past[0] - past[1])).tolist()
        ratios95 += (error / np.where(error >= 0, past[4] - past[0], past[0] - past[3])).tolist()
    if len(ratios80) < horizon:
        return mean, lo80, hi80, lo95, hi95
    s80 = float(np.quantile(np.abs(ratios80), 0.8))
    s95 = float(np.quantile(np.abs(ratios95), 0.95))
    return (mean, mean - (mean - lo80) * s80, mean + (hi80 - mean) * s80,
            mean - (mean - lo95) * s95, mean + (hi95 - mean) * s95)


def _fit_and_predict(history: np.ndarray, horizon: int) -> tuple[np.ndarray, ...]:
    if float(np.ptp(history)) == 0.0:
        flat = np.full(horizon, history[-1])
        return flat, flat, flat, flat, flat
    with warnings.catch_warnings():
        # convergence chatter from the optimiser; the fit is still the best found
        warnings.simplefilter("ignore")
        # a pandas Series: statsmodels' prediction results index their rows by the input's index
        model = ETSModel(pd.Series(history), error="add", trend="add", damped_trend=True, seasonal="add",
                         seasonal_periods=7, initialization_method="heuristic"
                         if len(history) >= 2 * 7 + 10 else "estimated")
        fitted = model.fit(disp=False, maxiter=200)
        prediction = fitted.get_prediction(start=len(history), end=len(history) + horizon - 1)
        mean = np.asarray(prediction.predicted_mean, dtype=np.float64)
        i80 = np.asarray(prediction.pred_int(alpha=0.2))
        i95 = np.asarray(prediction.pred_int(alpha=0.05))
    # The analytic intervals assume Gaussian errors with the residuals' standard deviation, which a few spikes
    # (launch days, outages) inflate; scale them by a robust estimate of that deviation instead (the median
    # absolute deviation times 1.4826, the normal's consistency constant; Rousseeuw & Croux 1993).
    residuals = np.asarray(fitted.resid, dtype=np.float64)[7:]
    spread = float(np.std(residuals))
    robust = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    ratio = min(1.0, robust / spread) if spread > 0 else 1.0
    return (mean, mean - (mean - i80[:, 0]) * ratio, mean + (i80[:, 1] - mean) * ratio,
            mean - (mean - i95[:, 0]) * ratio, mean + (i95[:, 1] - mean) * ratio)
