"""Batch use of the detector and the forecaster on CSV files (``beacon compute detect|forecast --csv FILE``).

Input: a header row, then ``timestamp,value`` rows (NAB's data format; the forecaster also takes ``date,value``).
Timestamps are ISO 8601 (``2015-03-03 21:07:53``, ``2015-03-03``), strictly increasing. Every problem is a
:class:`BatchInputError` naming the file, line and field; nothing is printed for a file that is refused.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

from services.compute.detect import DetectorConfig, OnlineDetector
from services.compute.forecast import MIN_DAYS, ForecastInputError, forecast_daily

MAX_ROWS = 2_000_000
"""Rows read at most: the whole file is checked before anything is printed (about 200 MB of memory)."""
MIN_DETECT_ROWS = 50
"""Below this the detector has nothing to learn from."""


class BatchInputError(ValueError):
    """A CSV that cannot be used; the message names the file and line."""


@dataclass
class Series:
    timestamps: list[datetime]
    labels: list[str]
    values: list[float]


def read_series(path: Path, *, max_rows: int = MAX_ROWS, allow_negative: bool = True) -> Series:
    """Read and check a ``timestamp,value`` CSV.

    Raises:
        BatchInputError: unreadable file, bad header, bad timestamp or value (NaN, infinite, negative when not
            allowed), unsorted or repeated timestamps, more than ``max_rows`` rows.
    """
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise BatchInputError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        return _parse(path, handle, max_rows, allow_negative)


def _rows(path: Path, handle: TextIO) -> Iterator[tuple[int, list[str]]]:
    try:
        yield from enumerate(csv.reader(handle), start=1)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BatchInputError(f"{path}: not a readable CSV file ({exc})") from exc


def _parse(path: Path, handle: TextIO, max_rows: int, allow_negative: bool) -> Series:
    series = Series([], [], [])
    for line, row in _rows(path, handle):
        if line == 1:
            if len(row) < 2 or _is_number(row[1]):
                raise BatchInputError(f"{path}, line 1: expected a header 'timestamp,value', got {','.join(row)!r}")
            continue
        if not row or not "".join(row).strip():
            continue
        if len(series.values) >= max_rows:
            raise BatchInputError(f"{path}: more than {max_rows:,} rows; split the file or raise --max-rows")
        if len(row) < 2:
            raise BatchInputError(f"{path}, line {line}: expected 'timestamp,value', got {','.join(row)!r}")
        label = row[0].strip()
        try:
            stamp = datetime.fromisoformat(label)
        except ValueError:
            raise BatchInputError(f"{path}, line {line}, timestamp: {label!r} is not an ISO 8601 date or time") \
                from None
        try:
            value = float(row[1])
        except ValueError:
            raise BatchInputError(f"{path}, line {line}, value: {row[1]!r} is not a number") from None
        if not math.isfinite(value):
            raise BatchInputError(f"{path}, line {line}, value: {row[1]!r} is not a finite number")
        if value < 0 and not allow_negative:
            raise BatchInputError(f"{path}, line {line}, value: {value:g} is negative (counts cannot be)")
        if series.timestamps:
            previous = series.timestamps[-1]
            if stamp == previous:
                raise BatchInputError(f"{path}, line {line}, timestamp: {label} repeats the previous row's")
            if stamp < previous:
                raise BatchInputError(f"{path}, line {line}, timestamp: {label} is earlier than the previous row's "
                                      "(rows must be in time order)")
        series.timestamps.append(stamp)
        series.labels.append(label)
        series.values.append(value)
    return series


def season_for(timestamps: list[datetime]) -> tuple[int, float]:
    """Points per seasonal cycle (a day, or a week for daily data) and the median step in seconds."""
    steps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(timestamps))
    step = steps[len(steps) // 2] if steps else 86400.0
    if step >= 86400:
        return 7, step
    return max(1, round(86400 / step)), step


def detect_csv(path: Path, out: TextIO, *, max_rows: int = MAX_ROWS) -> int:
    """Print ``timestamp,value,anomaly_score`` for every row; returns the number of rows.

    The first ``min(15 % of the rows, 750)`` rows only teach the detector (NAB's probationary period), and the
    season is a day (a week for daily data) found from the median step, with the phase taken from the
    timestamps so that gaps do not shift it.
    """
    series = read_series(path, max_rows=max_rows)
    if len(series.values) < MIN_DETECT_ROWS:
        raise BatchInputError(f"{path}: too short: {len(series.values)} rows, at least {MIN_DETECT_ROWS} are needed")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score"])
    for label, value, score in zip(series.labels, series.values, score_rows(series.timestamps, series.values),
                                   strict=True):
        writer.writerow([label, _number(value), f"{score:.6f}"])
    return len(series.values)


def score_rows(timestamps: list[datetime], values: list[float]) -> list[float]:
    """Anomaly scores of a whole series as the CLI computes them (and the NAB benchmark scores them)."""
    season, step = season_for(timestamps)
    learning = min(math.floor(0.15 * len(values)), 750)
    detector = OnlineDetector(DetectorConfig(season=season, learning=learning))
    origin = timestamps[0] if timestamps else datetime.min
    return [detector.update(value, round((stamp - origin).total_seconds() / step)).score
            for stamp, value in zip(timestamps, values, strict=True)]


def forecast_csv(path: Path, horizon: int, out: TextIO, *, max_rows: int = MAX_ROWS) -> int:
    """Print ``date,yhat,yhat_lower,yhat_upper`` (the 80 % interval) for ``horizon`` days after the last."""
    series = read_series(path, max_rows=max_rows, allow_negative=False)
    days: list[date] = []
    for line, stamp in enumerate(series.timestamps, start=2):
        if stamp.time() != datetime.min.time():
            raise BatchInputError(f"{path}, line {line}, timestamp: {series.labels[line - 2]} is not a date "
                                  "(the forecaster takes daily series)")
        days.append(stamp.date())
    if len(days) < MIN_DAYS:
        raise BatchInputError(f"{path}: too short: {len(days)} days, at least {MIN_DAYS} are needed")
    try:
        rows = forecast_daily(days, series.values, horizon)
    except ForecastInputError as exc:
        raise BatchInputError(f"{path}: {exc}") from None
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "yhat", "yhat_lower", "yhat_upper"])
    for row in rows:
        writer.writerow([row.day.isoformat(), f"{row.yhat:.2f}", f"{row.lower_80:.2f}", f"{row.upper_80:.2f}"])
    return len(rows)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
