"""Google Analytics 4 through the GA4 Data API: the reports Plausible's GA4 importer reads, as imported rows.

Credentials are OAuth 2 refresh-token credentials the user provides (client id, client secret, refresh token
of a Google account that can read the property, scope ``analytics.readonly``): an access token is obtained
from the token endpoint (``grant_type=refresh_token``) and obtained again when it expires or is refused.

Each dataset is one ``runReport`` (``POST /v1beta/properties/{id}:runReport``) paged with ``limit`` and
``offset`` until ``rowCount`` rows are read; the dimensions and metrics are those of Plausible's
``Plausible.Google.GA4.ReportRequest.full_report`` (exit pages are not available from GA4), and rows become
Plausible's ``imported_*`` rows as its ``Plausible.Imported.GoogleAnalytics4`` converts them:
``bounces = sessions - engagedSessions``, ``visit_duration = userEngagementDuration``, GA4's placeholder
values (``(not set)`` …) empty.

Errors: 429 (quota) and 5xx are retried with exponential backoff, then reported; 401 once gets a fresh
token, then like 403 it is reported in words (:class:`GA4Error`), never retried.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import stamina

DATA_API = "https://analyticsdata.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"
PAGE_SIZE = 10_000
MISSING = frozenset({"(none)", "(not set)", "(not provided)", "(other)"})

BOUNCES = "bounces = sessions - engagedSessions"
VISIT_METRICS = ("screenPageViews", "totalUsers", "sessions", BOUNCES, "userEngagementDuration")


@dataclass(frozen=True)
class Report:
    """One dataset: the imported table it fills and the report's dimensions and metrics."""

    table: str
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]


REPORTS = (
    Report("imported_visitors", ("date",),
           ("totalUsers", "screenPageViews", BOUNCES, "sessions", "userEngagementDuration")),
    Report("imported_sources", ("date", "sessionSource", "sessionMedium", "sessionCampaignName",
                                "sessionManualAdContent", "sessionGoogleAdsKeyword", "pageReferrer"), VISIT_METRICS),
    Report("imported_pages", ("date", "hostName", "pagePath"),
           ("totalUsers", "screenPageViews", "sessions", "userEngagementDuration")),
    Report("imported_entry_pages", ("date", "landingPage"), VISIT_METRICS),
    Report("imported_locations", ("date", "countryId", "region", "city"), VISIT_METRICS),
    Report("imported_devices", ("date", "deviceCategory"), VISIT_METRICS),
    Report("imported_browsers", ("date", "browser"), VISIT_METRICS),
    Report("imported_operating_systems", ("date", "operatingSystem", "operatingSystemVersion"), VISIT_METRICS),
)
"""Plausible's GA4 datasets (``full_report``)."""


class GA4Error(Exception):
    """The GA4 import cannot go on; the message says why in words (shown on the import's page)."""


class GA4Unavailable(GA4Error):
    """Google kept answering 429 (quota) or 5xx, or could not be reached, through every retry."""


class _Retryable(Exception):
    """A 429 or 5xx answer (or a lost connection): worth another try after a pause."""


@dataclass(frozen=True)
class Credentials:
    """OAuth 2 refresh-token credentials the user provides."""

    client_id: str
    client_secret: str
    refresh_token: str

    @classmethod
    def from_json(cls, raw: str, where: str) -> Credentials:
        """Parse ``{"client_id", "client_secret", "refresh_token"}``; GA4Error names ``where`` and the field."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise GA4Error(f"{where}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise GA4Error(f"{where}: a JSON object with client_id, client_secret and refresh_token")
        values = []
        for name in ("client_id", "client_secret", "refresh_token"):
            value = data.get(name)
            if not isinstance(value, str) or not value.strip():
                raise GA4Error(f"{where}: field {name!r} is missing or empty")
            values.append(value.strip())
        return cls(*values)


def _describe(response: httpx.Response) -> str:
    """Google's error message (``{"error": {"message": ...}}`` or OAuth's ``error_description``), or the status."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if body.get("error_description"):
            return str(body["error_description"])[:500]
        if isinstance(error, str):
            return error[:500]
    return f"HTTP {response.status_code}"


@dataclass
class Client:
    """A GA4 Data API client for one property with the user's credentials.

    ``data_api`` and ``token_url`` default to Google's; tests point them at a loopback server. ``attempts``
    and ``wait_max`` bound the retries of 429 and 5xx answers.
    """

    credentials: Credentials
    property_id: str
    http: httpx.Client
    data_api: str = DATA_API
    token_url: str = TOKEN_URL
    attempts: int = 5
    wait_max: float = 30.0
    _token: str = field(default="", repr=False)
    _expires: float = 0.0

    def __post_init__(self) -> None:
        if not self.property_id.isdigit():
            raise GA4Error(f"property: {self.property_id!r} is not a GA4 property id (digits, e.g. 123456789)")

    def _access_token(self, *, fresh: bool = False) -> str:
        if self._token and not fresh and time.monotonic() < self._expires - 60:
            return self._token
        response = self._send(lambda: self.http.post(self.token_url, data={
            "grant_type": "refresh_token", "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret, "refresh_token": self.credentials.refresh_token}))
        if response.status_code in (400, 401, 403):
            raise GA4Error("Google refused the credentials: " + _describe(response)
                           + " (check the client id, client secret and refresh token)")
        if response.status_code != 200:
            raise GA4Error(f"the token endpoint answered {response.status_code}: {_describe(response)}")
        try:
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise GA4Error("the token endpoint's answer has no access_token") from None
        return self._token

    def _send(self, request: Callable[[], httpx.Response]) -> httpx.Response:
        """``request()`` with 429, 5xx and lost connections retried (exponential backoff, jitter)."""
        last = ""
        try:
            for attempt in stamina.retry_context(on=_Retryable, attempts=self.attempts, wait_max=self.wait_max):
                with attempt:
                    try:
                        response = request()
                    except httpx.TransportError as exc:
                        last = f"the connection failed ({type(exc).__name__})"
                        raise _Retryable(last) from None
                    if response.status_code == 429 or response.status_code >= 500:
                        word = "quota exceeded" if response.status_code == 429 else "server error"
                        last = f"Google answered {response.status_code} ({word}): {_describe(response)}"
                        raise _Retryable(last)
                    return response
        except _Retryable:
            pass
        raise GA4Unavailable(f"{last}; gave up after {self.attempts} attempts")

    def run_report(self, report: Report, first: date, last: date, offset: int, limit: int = PAGE_SIZE
                   ) -> tuple[list[dict[str, str]], int]:
        """One page of ``report``: rows as {dimension or metric name: value} and the report's ``rowCount``."""
        body = {
            "dateRanges": [{"startDate": first.isoformat(), "endDate": last.isoformat()}],
            "dimensions": [{"name": name} for name in report.dimensions],
            "metrics": [({"name": m.split(" = ")[0], "expression": m.split(" = ")[1]} if " = " in m else {"name": m})
                        for m in report.metrics],
            "orderBys": [{"dimension": {"dimensionName": "date", "orderType": "ALPHANUMERIC"}}],
            "limit": str(limit), "offset": str(offset),
        }
        url = f"{self.data_api}/v1beta/properties/{self.property_id}:runReport"
        for fresh in (False, True):
            headers = {"Authorization": f"Bearer {self._access_token(fresh=fresh)}"}

            def post(headers: dict[str, str] = headers) -> httpx.Response:
                return self.http.post(url, json=body, headers=headers)

            response = self._send(post)
            if response.status_code != 401:
                break
        if response.status_code == 401:
            raise GA4Error("Google refused the access token (401): " + _describe(response))
        if response.status_code == 403:
            raise GA4Error(f"no access to GA4 property {self.property_id} (403): {_describe(response)}; the "
                           "Google account needs read access to the property and the analytics.readonly scope")
        if response.status_code == 404:
            raise GA4Error(f"GA4 property {self.property_id} was not found (404)")
        if response.status_code != 200:
            raise GA4Error(f"the GA4 Data API answered {response.status_code}: {_describe(response)}")
        return _rows(response)

    def pages(self, report: Report, first: date, last: date, offset: int = 0
              ) -> Iterator[tuple[int, list[dict[str, str]], int]]:
        """(offset after the page, the page's rows, rowCount) for each page from ``offset`` on."""
        while True:
            rows, count = self.run_report(report, first, last, offset)
            offset += len(rows)
            yield offset, rows, count
            if not rows or offset >= count:
                return


def _rows(response: httpx.Response) -> tuple[list[dict[str, str]], int]:
    try:
        body = response.json()
        names = [h["name"] for h in body.get("dimensionHeaders", [])] + \
                [h["name"] for h in body.get("metricHeaders", [])]
        rows = [dict(zip(names, [v.get("value", "") for v in row.get("dimensionValues", [])]
                         + [v.get("value", "") for v in row.get("metricValues", [])], strict=True))
                for row in body.get("rows", [])]
        return rows, int(body.get("rowCount", 0))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GA4Error(f"the GA4 Data API's answer is not a runReport response ({type(exc).__name__})") from None


# --- rows as imported rows ----------------------------------------------------------------------------------

SOURCES = {"google": "Google", "bing": "Bing", "duckduckgo": "DuckDuckGo", "(direct)": ""}
BROWSERS = {"User-Agent:Opera": "Opera", "Mozilla Compatible Agent": "Mobile App", "Android Webview": "Mobile App",
            "Android Browser": "Mobile App", "Safari (in-app)": "Mobile App", "User-Agent: Mozilla": "Firefox",
            "(not set)": ""}
SYSTEMS = {"Macintosh": "Mac", "Linux": "GNU/Linux", "(not set)": ""}


def _text(value: str) -> str:
    return "" if value in MISSING else value


def _number(value: str, name: str) -> int:
    try:
        number = round(float(value))
    except ValueError:
        raise GA4Error(f"metric {name}: {value!r} is not a number") from None
    if number < 0:
        raise GA4Error(f"metric {name}: negative value {value!r}")
    return number


def _day(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise GA4Error(f"dimension date: {value!r} is not a YYYYMMDD date") from None


def _source(value: str) -> str:
    if value in MISSING:
        return ""
    return SOURCES.get(value.lower(), value)


def convert(table: str, row: dict[str, str]) -> dict[str, Any] | None:
    """An ``imported_*`` row (Plausible's columns) from a report row; None for rows without a date."""
    if row.get("date", "") in MISSING:
        return None
    out: dict[str, Any] = {"date": _day(row["date"]), "visitors": _number(row["totalUsers"], "totalUsers"),
                           "pageviews": _number(row["screenPageViews"], "screenPageViews")}
    if table != "imported_pages":
        out["bounces"] = _number(row["bounces"], "bounces")
        out["visit_duration"] = _number(row["userEngagementDuration"], "userEngagementDuration")
    visits = _number(row["sessions"], "sessions")
    if table == "imported_visitors":
        out["visits"] = visits
    elif table == "imported_sources":
        out |= {"source": _source(row["sessionSource"]), "referrer": "", "utm_source": "",
                "utm_medium": _text(row["sessionMedium"]), "utm_campaign": _text(row["sessionCampaignName"]),
                "utm_content": _text(row["sessionManualAdContent"]),
                "utm_term": _text(row["sessionGoogleAdsKeyword"]), "visits": visits}
    elif table == "imported_pages":
        out |= {"hostname": row["hostName"].removeprefix("www."), "page": urlsplit(row["pagePath"]).path or "/",
                "visits": visits, "exits": 0}
    elif table == "imported_entry_pages":
        out |= {"entry_page": row["landingPage"], "entrances": visits}
    elif table == "imported_locations":
        out |= {"country": _text(row["countryId"]), "region": _text(row["region"]), "city": 0, "visits": visits}
    elif table == "imported_devices":
        out |= {"device": _text(row["deviceCategory"]).capitalize(), "visits": visits}
    elif table == "imported_browsers":
        browser = row["browser"]
        out |= {"browser": BROWSERS.get(browser, _text(browser)), "browser_version": "", "visits": visits}
    elif table == "imported_operating_systems":
        system = row["operatingSystem"]
        out |= {"operating_system": SYSTEMS.get(system, _text(system)),
                "operating_system_version": _text(row["operatingSystemVersion"]), "visits": visits}
    else:
        raise GA4Error(f"no conversion for table {table}")
    return out
