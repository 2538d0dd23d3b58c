"""``beacon compute detect|forecast --csv FILE``: output contract and bad input."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from app.cli import main


def write(path: Path, rows: list[tuple[str, str]], header: str = "timestamp,value") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def hourly(n: int, spike_at: int | None = None) -> list[tuple[str, str]]:
    start = datetime(2026, 1, 1)
    rows = []
    for i in range(n):
        value = 50 + 20 * math.sin(i / 24 * 2 * math.pi) + (i * 7919 % 11)
        if i == spike_at:
            value = 400
        rows.append(((start + timedelta(hours=i)).isoformat(sep=" "), f"{value:.0f}"))
    return rows


def test_detect_prints_a_score_per_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every row comes back with a score in [0, 1]; the spike has the highest."""
    path = write(tmp_path / "s.csv", hourly(600, spike_at=500))
    assert 0 == main(["compute", "detect", "--csv", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert "timestamp,value,anomaly_score" == lines[0]
    assert 601 == len(lines)
    scores = [float(line.split(",")[2]) for line in lines[1:]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert 500 == max(range(600), key=scores.__getitem__)
    assert scores[500] >= 0.5


def test_forecast_prints_horizon_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """date,yhat,yhat_lower,yhat_upper for each of the next N days, the interval around the forecast."""
    start = date(2026, 1, 1)
    rows = [((start + timedelta(days=i)).isoformat(), str(100 + 30 * (i % 7 < 5) + i % 3)) for i in range(70)]
    path = write(tmp_path / "d.csv", rows, header="date,visitors")
    assert 0 == main(["compute", "forecast", "--csv", str(path), "--horizon", "10"])
    lines = capsys.readouterr().out.splitlines()
    assert "date,yhat,yhat_lower,yhat_upper" == lines[0]
    assert ["2026-03-12", "2026-03-21"] == [lines[1].split(",")[0], lines[-1].split(",")[0]]
    for line in lines[1:]:
        _, yhat, low, high = line.split(",")
        assert float(low) <= float(yhat) <= float(high)


BAD = [
    pytest.param("detect", [("2026-01-01 00:00:00", "1")] * 1, "too short: 1 rows", id="too-short"),
    pytest.param("detect", [*hourly(60)[:30], ("2026-01-02 06:00:00", "nan"), *hourly(60)[31:]],
                 "line 32, value: 'nan' is not a finite number", id="nan"),
    pytest.param("forecast", [("2026-01-01", "3"), ("2026-01-02", "-1")], "line 3, value: -1 is negative",
                 id="negative"),
    pytest.param("detect", [("2026-01-01 01:00:00", "1"), ("2026-01-01 00:00:00", "1")],
                 "line 3, timestamp: 2026-01-01 00:00:00 is earlier than the previous row's", id="unsorted"),
    pytest.param("detect", [("2026-01-01 01:00:00", "1"), ("2026-01-01 01:00:00", "2")],
                 "line 3, timestamp: 2026-01-01 01:00:00 repeats the previous row's", id="duplicate"),
    pytest.param("detect", [("yesterday", "1")], "line 2, timestamp: 'yesterday' is not an ISO 8601", id="date"),
    pytest.param("detect", [("2026-01-01", "many")], "line 2, value: 'many' is not a number", id="value"),
    pytest.param("forecast", [("2026-01-01 10:00:00", "1")], "is not a date", id="forecast-hours"),
    pytest.param("forecast", [(f"2026-01-{d:02d}", "1") for d in range(1, 11)], "too short: 10 days", id="few-days"),
]


@pytest.mark.parametrize(("command", "rows", "message"), BAD)
def test_bad_input_is_one_line_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    command: str, rows: list[tuple[str, str]], message: str) -> None:
    """Bad input exits 1 with one line on stderr naming what is wrong, and nothing on stdout."""
    path = write(tmp_path / "bad.csv", rows)
    assert 1 == main(["compute", command, "--csv", str(path)])
    captured = capsys.readouterr()
    assert "" == captured.out
    assert message in captured.err
    assert 1 == len(captured.err.strip().splitlines())


def test_too_many_rows_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file longer than --max-rows (2,000,000 by default; a 10-million-row file) is refused before output."""
    path = write(tmp_path / "long.csv", hourly(120))
    assert 1 == main(["compute", "detect", "--csv", str(path), "--max-rows", "100"])
    assert "more than 100 rows" in capsys.readouterr().err


def test_missing_file_and_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file and a file without a header are named."""
    assert 1 == main(["compute", "detect", "--csv", str(tmp_path / "nope.csv")])
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "h.csv").write_text("2026-01-01,3\n")
    assert 1 == main(["compute", "detect", "--csv", str(tmp_path / "h.csv")])
    assert "expected a header 'timestamp,value'" in capsys.readouterr().err
