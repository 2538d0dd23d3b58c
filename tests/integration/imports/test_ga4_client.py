"""The GA4 Data API client against a real HTTP server on loopback speaking the documented shapes (see
:mod:`tests.support.google`)."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from services.integrations.ga4 import REPORTS, Client, Credentials, GA4Error, convert
from tests.support.google import CREDENTIALS, PROPERTY, Google


def client(google: Google, **options: Any) -> Client:
    return Client(CREDENTIALS, PROPERTY, httpx.Client(timeout=5), data_api=google.url,
                  token_url=f"{google.url}/token", **options)


VISITORS = next(r for r in REPORTS if r.table == "imported_visitors")
SOURCES = next(r for r in REPORTS if r.table == "imported_sources")


def test_pages_through_a_report_and_converts_its_rows(google: Google) -> None:
    """Three rows in pages of two: two requests with offsets 0 and 2; rows become imported_visitors rows."""
    google.rows["imported_visitors"] = [["20260301", "10", "30", "4", "12", "600"],
                                        ["20260302", "5", "5", "5", "5", "0"],
                                        ["20260303", "1", "2", "0", "1", "42.6"]]
    ga = client(google)
    got = []
    offset = 0
    while True:
        rows, count = ga.run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 3), offset, limit=2)
        got += rows
        offset += len(rows)
        if offset >= count:
            break
    assert ["0", "2"] == [r["offset"] for r in google.requests]
    assert {"name": "bounces", "expression": "sessions - engagedSessions"} in google.requests[0]["metrics"]
    assert [{"startDate": "2026-03-01", "endDate": "2026-03-03"}] == google.requests[0]["dateRanges"]
    assert [{"date": date(2026, 3, 3), "visitors": 1, "pageviews": 2, "bounces": 0, "visit_duration": 43,
             "visits": 1}] == [convert("imported_visitors", got[2])]
    assert 1 == google.tokens_issued


def test_sources_follow_plausibles_conversion(google: Google) -> None:
    """google -> Google, (direct) -> empty, (not set) values empty."""
    row = {"date": "20260301", "sessionSource": "(direct)", "sessionMedium": "(none)",
           "sessionCampaignName": "(not set)", "sessionManualAdContent": "(not set)",
           "sessionGoogleAdsKeyword": "(not set)", "pageReferrer": "", "screenPageViews": "3", "totalUsers": "2",
           "sessions": "2", "bounces": "1", "userEngagementDuration": "20"}
    direct = convert("imported_sources", row)
    assert direct is not None and ("", "", "") == (direct["source"], direct["utm_medium"], direct["utm_campaign"])
    google_row = convert("imported_sources", {**row, "sessionSource": "google", "sessionMedium": "organic"})
    assert google_row is not None and ("Google", "organic") == (google_row["source"], google_row["utm_medium"])


def test_quota_and_server_errors_are_retried(google: Google) -> None:
    """A 429 and a 503 before the answer: three requests, one answer."""
    google.rows["imported_visitors"] = [["20260301", "1", "1", "1", "1", "0"]]
    google.faults = [429, 503]
    rows, count = client(google).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert (1, 1) == (len(rows), count)
    assert 3 == len(google.requests)


def test_quota_exhausted_is_reported_in_words(google: Google) -> None:
    """429 on every attempt: given up after the attempts, with Google's message."""
    google.faults = [429] * 3
    with pytest.raises(GA4Error, match=r"429 \(quota exceeded\): Exhausted property tokens per hour.*3 attempts"):
        client(google, attempts=3).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)


def test_expired_token_is_refreshed_once(google: Google) -> None:
    """A 401 gets a new access token from the refresh token, and the request goes through."""
    google.rows["imported_sources"] = []
    google.faults = [401]
    rows, count = client(google).run_report(SOURCES, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert ([], 0) == (rows, count)
    assert 2 == google.tokens_issued


def test_forbidden_property_is_reported_in_words(google: Google) -> None:
    """403: no retry, a message naming the property and the access it needs."""
    google.faults = [403]
    with pytest.raises(GA4Error, match="no access to GA4 property 123456789 \\(403\\): User does not have"):
        client(google).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert 1 == len(google.requests)


def test_refused_credentials_are_reported_in_words(google: Google) -> None:
    """The token endpoint refuses the refresh token: its description is shown, nothing is fetched."""
    google.token_status = 400
    with pytest.raises(GA4Error, match="Google refused the credentials: Token has been expired or revoked"):
        client(google).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert [] == google.requests


@pytest.mark.parametrize(("raw", "message"), [
    pytest.param("{", "creds.json: not JSON", id="not-json"),
    pytest.param('{"client_id": "a", "client_secret": "b"}', "field 'refresh_token' is missing", id="missing"),
    pytest.param("[]", "a JSON object", id="not-object"),
])
def test_bad_credentials_file(raw: str, message: str) -> None:
    """Credentials that cannot be used are refused naming the file and field."""
    with pytest.raises(GA4Error, match=message):
        Credentials.from_json(raw, "creds.json")


def test_bad_metric_value_is_refused() -> None:
    """A negative count is refused naming the metric."""
    with pytest.raises(GA4Error, match="metric totalUsers: negative value"):
        convert("imported_visitors", {"date": "20260301", "totalUsers": "-1", "screenPageViews": "1",
                                      "bounces": "0", "sessions": "1", "userEngagementDuration": "0"})
