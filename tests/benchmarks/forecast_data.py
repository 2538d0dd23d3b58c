"""The daily web-traffic series in shared/datasets/forecast and a rolling-origin evaluation of a forecaster.

MASE (Hyndman & Koehler 2006, "Another look at measures of forecast accuracy"): the forecast's mean absolute error
over the horizon divided by the in-sample mean absolute error of the seasonal-naive forecast with lag 7 on the
training data. ``relative MAE`` divides instead by the MAE of the seasonal-naive *forecast* (last week repeated) over
the same horizon. Coverage: the share of actual days inside the 80 % interval.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

# (file, date column, value column, date format) - the raw-count files; the log files are the same series
SERIES = (
    ("example_wp_peyton_manning.csv", "ds", "y", "%Y-%m-%d"),
    ("example_wp_R.csv", "ds", "y", "%Y-%m-%d"),
    ("visitas_por_dia_web_cienciadedatos_2020_2021.csv", "date", "users", "%d/%m/%y"),
)


def load_series(root: Path) -> dict[str, tuple[list[date], list[float]]]:
    series = {}
    for name, day_column, value_column, day_format in SERIES:
        with (root / "forecast" / name).open(newline="") as handle:
            rows = [(datetime.strptime(row[day_column], day_format).date(), float(row[value_column]))
                    for row in csv.DictReader(handle)]
        rows.sort()
        series[name] = ([d for d, _ in rows], [v for _, v in rows])
    return series


@dataclass
class Evaluation:
    origins: int
    mase: float
    relative_mae: float
    coverage_80: float
    coverage_95: float


Forecaster = Callable[[list[date], list[float], int], list[tuple[float, float, float, float, float]]]


def rolling_origin(days: list[date], values: list[float], forecaster: Forecaster, horizon: int = 30,
                   origins: int = 8, spacing: int = 30) -> Evaluation:
    """Forecast from ``origins`` cut-offs ``spacing`` days apart, the last one ``horizon`` days before the end."""
    errors, naive_errors, scales, inside_80, inside_95 = [], [], [], [], []
    by_day = dict(zip(days, values, strict=True))
    offsets = [(d - days[0]).days for d in days]
    full = np.interp(np.arange(offsets[-1] + 1), offsets, np.asarray(values))
    start = days[0]
    for k in range(origins):
        cut = len(full) - horizon - k * spacing
        train_days = [d for d in days if (d - start).days < cut]
        train_values = [by_day[d] for d in train_days]
        predicted = forecaster(train_days, train_values, horizon)
        actual = full[cut:cut + horizon]
        observed = np.array([(start.toordinal() + cut + h) in {d.toordinal() for d in days} for h in range(horizon)])
        yhat = np.array([p[0] for p in predicted])
        naive = np.array([full[cut - 7 + (h % 7)] for h in range(horizon)])
        train = full[max(0, cut - 730):cut]
        scales.append(float(np.mean(np.abs(train[7:] - train[:-7]))))
        errors.append(float(np.mean(np.abs(yhat - actual)[observed])))
        naive_errors.append(float(np.mean(np.abs(naive - actual)[observed])))
        lo80 = np.array([p[1] for p in predicted])
        hi80 = np.array([p[2] for p in predicted])
        lo95 = np.array([p[3] for p in predicted])
        hi95 = np.array([p[4] for p in predicted])
        inside_80.extend(((actual >= lo80) & (actual <= hi80))[observed].tolist())
        inside_95.extend(((actual >= lo95) & (actual <= hi95))[observed].tolist())
    return Evaluation(
        origins=origins,
        mase=float(np.mean(np.array(errors) / np.array(scales))),
        relative_mae=float(np.sum(errors) / np.sum(naive_errors)),
        coverage_80=float(np.mean(inside_80)),
        coverage_95=float(np.mean(inside_95)),
    )
