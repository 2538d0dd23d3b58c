"""The anomaly rule's parameters, the hour it looks at, and the clock-aligned hourly pass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.core.errors import ClientError
from services.integrations.alerts import last_complete_hour
from services.integrations.logic import check_rule_params
from services.integrations.webhooks import envelope, summary
from workers.scheduler import Periodic


@pytest.mark.parametrize(("params", "clean"), [
    ({}, {"threshold": 0.5, "metric": "visitors"}),
    ({"threshold": 1, "metric": "pageviews"}, {"threshold": 1.0, "metric": "pageviews"}),
    ({"threshold": 0.75}, {"threshold": 0.75, "metric": "visitors"}),
])
def test_anomaly_params_are_cleaned(params: dict[str, Any], clean: dict[str, Any]) -> None:
    assert clean == check_rule_params("anomaly", params)


@pytest.mark.parametrize(("params", "field"), [
    ({"threshold": 0}, "params.threshold"), ({"threshold": -0.1}, "params.threshold"),
    ({"threshold": 1.01}, "params.threshold"), ({"threshold": True}, "params.threshold"),
    ({"threshold": "0.5"}, "params.threshold"), ({"metric": "events"}, "params.metric"),
    ({"goal": "Signup"}, "params.goal"),
])
def test_bad_anomaly_params_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ClientError, match=field):
        check_rule_params("anomaly", params)


def test_last_complete_hour_is_in_site_time() -> None:
    now = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
    assert datetime(2026, 2, 28, 23) == last_complete_hour(now, "UTC")
    assert datetime(2026, 2, 28, 18) == last_complete_hour(now, "America/New_York")
    assert datetime(2026, 3, 1, 4) == last_complete_hour(now, "Asia/Kolkata")  # 05:35 local: 04:00 is the hour


def test_summary_names_the_explanation() -> None:
    payload = envelope("traffic.anomaly", {"site": "a.example", "explanation": "visitors 120 at 14:00 on Fri 20 Feb, "
                                           "expected 2\u201315 for a Friday afternoon", "score": 0.93})
    assert ("a.example: unusual traffic — visitors 120 at 14:00 on Fri 20 Feb, expected 2\u201315 for a Friday "
            "afternoon (anomaly score 0.93).") == summary(payload)


def test_aligned_job_runs_at_the_same_minute_of_every_hour() -> None:
    job = Periodic("hourly", 3600.0, lambda: None, offset=120.0)
    start = datetime(2026, 3, 1, 12, 30, 17, tzinfo=UTC).timestamp()
    job.schedule_after(start)
    assert datetime(2026, 3, 1, 13, 2, tzinfo=UTC) == datetime.fromtimestamp(job.next_at, UTC)
    job.schedule_after(job.next_at + 0.9)  # the tick that ran it came a little late: no drift
    assert datetime(2026, 3, 1, 14, 2, tzinfo=UTC) == datetime.fromtimestamp(job.next_at, UTC)
    plain = Periodic("every", 60.0, lambda: None)
    plain.schedule_after(start)
    assert start + 60 == plain.next_at
