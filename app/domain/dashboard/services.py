"""What the dashboard shows, gathered from the analytics service.

The dashboard's state lives in its URL's query string (see :func:`parse_state`): a period, an optional
custom range, the comparison switch, the chart's metric and interval, and filters ``f=<name>==<value>``
(or ``!=``). Every parameter is checked here and a bad one is a 400 naming it; the valid state becomes
Plausible Stats API v2 queries that the analytics service answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from app.core.contracts import PropertyKeys, StatsAnswer, StatsQuery
from app.core.errors import ClientError
from app.core.inputs import check_date
from app.core.models import Annotation, Site
from app.core.periods import default_interval, month_start
from app.core.resources import Resources
from app.core.tokens import WS_TOKEN_PURPOSE, sign_token
from app.domain.sites.services import list_goals
from app.realtime.publish import site_channel

WS_TOKEN_TTL = 12 * 3600

PERIODS = ("today", "7d", "30d", "month", "6mo", "12mo", "all", "custom")
DEFAULT_PERIOD = "30d"
INTERVALS = ("hour", "day", "week", "month")
# The top stats and their labels, as Plausible's dashboard shows them (StatsController.top_stats): the usual
# set; under a page filter (event:page) bounce rate, time on page and scroll depth instead of views per visit
# and visit duration (only scroll depth when imported stats are included, which hold neither); under a goal
# filter the goal's conversions, its revenue when the goal has one (a single currency) and the conversion rate.
TOP_STATS: dict[str, tuple[tuple[str, str], ...]] = {
    "default": (("visitors", "Unique visitors"), ("visits", "Total visits"), ("pageviews", "Total pageviews"),
                ("views_per_visit", "Views per visit"), ("bounce_rate", "Bounce rate"),
                ("visit_duration", "Visit duration")),
    "page": (("visitors", "Unique visitors"), ("visits", "Total visits"), ("pageviews", "Total pageviews"),
             ("bounce_rate", "Bounce rate"), ("time_on_page", "Time on page"), ("scroll_depth", "Scroll depth")),
    "goal": (("total_visitors", "Unique visitors"), ("visitors", "Unique conversions"),
             ("events", "Total conversions"), ("average_revenue", "Average revenue"),
             ("total_revenue", "Total revenue"), ("conversion_rate", "Conversion rate")),
}
TOP_METRICS = tuple(name for name, _ in TOP_STATS["default"])
NOT_IMPORTED = frozenset({"bounce_rate", "time_on_page"})
"""Left out of the page-filtered top stats when imported stats are included (Plausible does the same)."""
NOT_GRAPHABLE = frozenset({"total_visitors"})
"""Every top stat but the goal's unique visitors can be the chart's metric, as on Plausible's dashboard."""
CHART_METRICS = tuple(dict.fromkeys(name for stats in TOP_STATS.values() for name, _ in stats
                                    if name not in NOT_GRAPHABLE))
REVENUE = frozenset({"average_revenue", "total_revenue"})
POINTS = frozenset({"bounce_rate", "conversion_rate", "scroll_depth"})
"""Metrics whose change is a difference in percentage points (Plausible's Compare.calculate_change)."""
MAX_FILTERS = 10
MAX_VALUE = 2000
MAX_HOURLY_DAYS = 7
MAX_DAILY_DAYS = 400
MAX_CUSTOM_DAYS = 3650
PROPS = "props:"

# URL names of the dimensions the dashboard breaks down and filters by -> Stats API v2 dimensions.
DIMENSIONS: dict[str, str] = {
    "page": "event:page", "entry_page": "visit:entry_page", "exit_page": "visit:exit_page",
    "hostname": "event:hostname",
    "source": "visit:source", "referrer": "visit:referrer", "channel": "visit:channel",
    "utm_medium": "visit:utm_medium", "utm_source": "visit:utm_source", "utm_campaign": "visit:utm_campaign",
    "country": "visit:country",
    "browser": "visit:browser", "os": "visit:os", "device": "visit:device",
    # Goals configured in the site's settings, and every custom event by name.
    "goal": "event:goal", "event": "event:name",
}
NEGATABLE = frozenset(DIMENSIONS) - {"goal"}
"""Plausible's event:goal filter has no is_not: a goal filter cannot be negated."""
# Metrics of each breakdown besides visitors (session metrics cannot go with event dimensions).
BREAKDOWN_METRICS: dict[str, tuple[str, ...]] = {
    "page": ("visitors", "pageviews", "scroll_depth"),
    "entry_page": ("visitors", "visits"), "exit_page": ("visitors", "visits"),
    "goal": ("visitors", "events", "conversion_rate"), "event": ("visitors", "events"),
}
PROP_METRICS = ("visitors", "events")
DEFAULT_METRICS = ("visitors", "percentage")
PARAMS = frozenset({"period", "from", "to", "compare", "metric", "interval", "f", "imports"})
BREAKDOWN_PARAMS = PARAMS | {"dimension", "limit"}


def local_today(site: Site, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(site.timezone)).date()


@dataclass(frozen=True)
class Filter:
    name: str
    """URL name (``page``, ``props:plan``)."""
    value: str
    negated: bool = False

    @property
    def dimension(self) -> str:
        if self.name.startswith(PROPS):
            return "event:props:" + self.name.removeprefix(PROPS)
        return DIMENSIONS[self.name]

    def v2(self) -> list[Any]:
        return ["is_not" if self.negated else "is", self.dimension, [self.value]]

    def param(self) -> str:
        return f"{self.name}{'!=' if self.negated else '=='}{self.value}"


@dataclass(frozen=True)
class State:
    """A validated dashboard state: what the URL asks the dashboard to show."""

    period: str
    first: date | None
    """First and last local day; ``None`` for the period ``all`` until the analytics service says."""
    last: date
    compare: bool
    metric: str
    interval: str | None
    filters: tuple[Filter, ...] = field(default=())
    imports: bool = True
    """Whether imported stats join the answers where Plausible's rules allow (``imports=off`` leaves them out;
    on by default, as on Plausible's dashboard)."""

    def date_range(self) -> list[str] | str:
        return "all" if self.first is None else [self.first.isoformat(), self.last.isoformat()]

    def previous(self) -> tuple[date, date] | None:
        """The period of the same length right before this one, when comparing."""
        if not self.compare or self.first is None:
            return None
        days = (self.last - self.first).days + 1
        return self.first - timedelta(days=days), self.first - timedelta(days=1)

    def to_json(self) -> dict[str, Any]:
        return {"period": self.period, "from": self.first.isoformat() if self.first else None,
                "to": self.last.isoformat(), "compare": self.compare, "metric": self.metric,
                "interval": self.interval, "imports": self.imports, "filters": [
                    {"name": f.name, "value": f.value, "negated": f.negated, "param": f.param()}
                    for f in self.filters]}


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise ClientError(f"{name}: give it at most once")
    return values[0] if values else None


def _parse_day(value: str | None, name: str) -> date:
    if not value:
        raise ClientError(f"{name}: required with period=custom, a date such as 2026-11-26")
    try:
        return check_date(date.fromisoformat(value), name)
    except ValueError:
        raise ClientError(f"{name}: not a date such as 2026-11-26: {value[:40]!r}") from None


def parse_filter(raw: str) -> Filter:
    """``name==value`` or ``name!=value``; ``name`` is a dashboard dimension or ``props:<key>``."""
    positions = [i for i in (raw.find("=="), raw.find("!=")) if i >= 0]
    if not positions:
        raise ClientError(f"f: expected name==value or name!=value, got {raw[:80]!r}")
    at = min(positions)
    name, negated, value = raw[:at], raw[at] == "!", raw[at + 2:]
    if name.startswith(PROPS):
        key = name.removeprefix(PROPS)
        if not 0 < len(key) <= 300:
            raise ClientError("f: a property key has 1 to 300 characters")
    elif name not in DIMENSIONS:
        raise ClientError(f"f: cannot filter by {name[:80]!r}; use one of {', '.join(DIMENSIONS)} or props:<key>")
    elif negated and name not in NEGATABLE:
        raise ClientError(f"f: a {name} filter cannot be negated (use {name}==value)")
    if not value or len(value) > MAX_VALUE:
        raise ClientError(f"f: the value of {name} has 1 to {MAX_VALUE} characters")
    return Filter(name, value, negated)


def check_interval(interval: str, days: int) -> None:
    if interval == "hour" and days > MAX_HOURLY_DAYS:
        raise ClientError(f"interval: hour needs a range of at most {MAX_HOURLY_DAYS} days")
    if interval == "day" and days > MAX_DAILY_DAYS:
        raise ClientError(f"interval: day needs a range of at most {MAX_DAILY_DAYS} days")


def default_period(site: Site, today: date) -> str:
    """The period shown when the URL names none: today for a site added today or yesterday (whose last 30 days,
    ending yesterday, hold nothing yet), else the last 30 days; Plausible's dashboard does the same."""
    added = site.created_at
    if added is not None and added.astimezone(ZoneInfo(site.timezone)).date() >= today - timedelta(days=1):
        return "today"
    return DEFAULT_PERIOD


def parse_state(params: Mapping[str, Sequence[str]], site: Site, *, allowed: frozenset[str] = PARAMS,
                now: datetime | None = None) -> State:
    """Validate the dashboard's query string; raise ClientError naming the first bad parameter."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ClientError(f"{unknown[0]}: unknown parameter; known are {', '.join(sorted(allowed))}")
    today = local_today(site, now)
    period = _one(params, "period") or default_period(site, today)
    if period not in PERIODS:
        raise ClientError(f"period: one of {', '.join(PERIODS)}")
    first: date | None
    last = today
    if period == "custom":
        first, last = _parse_day(_one(params, "from"), "from"), _parse_day(_one(params, "to"), "to")
        if last < first:
            raise ClientError("to: before from")
        if (last - first).days >= MAX_CUSTOM_DAYS:
            raise ClientError(f"to: a custom range spans at most {MAX_CUSTOM_DAYS} days")
    else:
        for name in ("from", "to"):
            if _one(params, name) is not None:
                raise ClientError(f"{name}: only with period=custom")
        # Plausible's periods (its QueryPeriod): the last N days and the last N months end before today and
        # before this month, as the Stats API's "30d" and "6mo" do.
        first = {
            "today": today, "7d": today - timedelta(days=7), "30d": today - timedelta(days=30),
            "month": today.replace(day=1), "6mo": month_start(today, 6), "12mo": month_start(today, 12),
            "all": None,
        }[period]
        if period in ("7d", "30d"):
            last = today - timedelta(days=1)
        elif period in ("6mo", "12mo"):
            last = month_start(today) - timedelta(days=1)
    compare = _one(params, "compare") or "off"
    if compare not in ("previous", "off"):
        raise ClientError("compare: previous or off")
    metric = _one(params, "metric") or "visitors"
    if metric not in CHART_METRICS:
        raise ClientError(f"metric: one of {', '.join(CHART_METRICS)}")
    imports = _one(params, "imports") or "on"
    if imports not in ("on", "off"):
        raise ClientError("imports: on or off")
    interval = _one(params, "interval")
    if interval is not None:
        if interval not in INTERVALS:
            raise ClientError(f"interval: one of {', '.join(INTERVALS)}")
        if first is not None:
            check_interval(interval, (last - first).days + 1)
    raw_filters = params.get("f") or []
    if len(raw_filters) > MAX_FILTERS:
        raise ClientError(f"f: at most {MAX_FILTERS} filters")
    filters = tuple(parse_filter(raw) for raw in raw_filters)
    if len({(f.name, f.value) for f in filters}) != len(filters):
        raise ClientError("f: the same filter twice")
    return State(period, first, last, compare == "previous", metric, interval, filters, imports == "on")


def breakdown_dimension(params: Mapping[str, Sequence[str]]) -> tuple[str, str, tuple[str, ...]]:
    """The URL name, v2 dimension and metrics of a breakdown's ``dimension`` parameter."""
    name = _one(params, "dimension")
    if not name:
        raise ClientError(f"dimension: required, one of {', '.join(DIMENSIONS)} or props:<key>")
    if name.startswith(PROPS):
        key = name.removeprefix(PROPS)
        if not 0 < len(key) <= 300:
            raise ClientError("dimension: a property key has 1 to 300 characters")
        return name, "event:props:" + key, PROP_METRICS
    if name not in DIMENSIONS:
        raise ClientError(f"dimension: one of {', '.join(DIMENSIONS)} or props:<key>")
    return name, DIMENSIONS[name], BREAKDOWN_METRICS.get(name, DEFAULT_METRICS)


def breakdown_limit(params: Mapping[str, Sequence[str]]) -> int:
    raw = _one(params, "limit")
    if raw is None:
        return 10
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ClientError("limit: an integer from 1 to 100")
    return int(raw)


# --- queries ---------------------------------------------------------------------------------------------


class Stats:
    """Sends the dashboard's v2 queries for one site to the analytics service."""

    def __init__(self, resources: Resources, site: Site, imports: bool = False) -> None:
        self._services = resources.services
        self._site = site
        self._imports = imports
        self.imports_meta: dict[str, Any] = {}
        """Plausible's imports fields of the last answer (``imports_included``, ``imports_skip_reason``, ...)."""

    async def query(self, metrics: Sequence[str], date_range: list[str] | str, filters: Sequence[Filter] = (),
                    dimensions: Sequence[str] = (), extra_filters: Sequence[list[Any]] = (),
                    **options: Any) -> StatsAnswer:
        if self._imports:
            options["include"] = {**(options.get("include") or {}), "imports": True}
        body = StatsQuery(site_id=self._site.domain, metrics=list(metrics), date_range=date_range,
                          dimensions=list(dimensions), filters=[f.v2() for f in filters] + list(extra_filters),
                          **options)
        answer = await self._services.json("analytics", "POST", "/query", json=msgspec.to_builtins(body))
        converted = msgspec.convert(answer, StatsAnswer)
        self.imports_meta = {k: v for k, v in msgspec.to_builtins(converted.meta).items() if k.startswith("imports_")}
        return converted

    async def totals(self, metrics: Sequence[str], date_range: list[str] | str,
                     filters: Sequence[Filter]) -> tuple[dict[str, Any], date | None]:
        """Aggregate metrics (0 for nothing, as Plausible shows a time on page without engagement, but None
        kept for a revenue without a single currency and a scroll depth without engagement), and the first
        day the analytics service used (for the period ``all``)."""
        answer = await self.query(metrics, date_range, filters)
        values: list[Any] = list(answer.results[0].metrics) if answer.results else [None] * len(metrics)
        keep_none = REVENUE | {"scroll_depth"}
        return ({name: value if value is not None or name in keep_none else 0
                 for name, value in zip(metrics, values, strict=True)}, answer.first_day)

    async def top_stats(self, mode: str, date_range: list[str] | str,
                        filters: Sequence[Filter]) -> tuple[dict[str, Any], date | None]:
        """The top stats of ``mode`` (see :data:`TOP_STATS`); the goal's ``total_visitors`` are the visitors
        of the same query without its goal and property filters, Plausible's divisor of the conversion rate."""
        metrics = [name for name, _ in TOP_STATS[mode] if name != "total_visitors"]
        if mode != "goal":
            return await self.totals(metrics, date_range, filters)
        everyone = [f for f in filters if f.name != "goal" and not f.name.startswith(PROPS)]
        (totals, first), (total, _) = await asyncio.gather(self.totals(metrics, date_range, filters),
                                                           self.totals(("visitors",), date_range, everyone))
        return {"total_visitors": total["visitors"], **totals}, first

    async def series(self, metrics: Sequence[str], first: date, last: date, interval: str,
                     filters: Sequence[Filter]) -> tuple[list[str], dict[str, list[float]]]:
        """Every bucket's label and each metric's value per bucket (0 where nothing happened)."""
        answer = await self.query(metrics, [first.isoformat(), last.isoformat()], filters,
                                  dimensions=[f"time:{interval}"], include={"time_labels": True})
        labels = answer.meta.time_labels or []
        found = {row.dimensions[0]: [_plain(v) or 0 for v in row.metrics] for row in answer.results}
        return labels, {metric: [found.get(label, [0] * len(metrics))[i] for label in labels]
                        for i, metric in enumerate(metrics)}


def top_mode(filters: Sequence[Filter]) -> str:
    """Which top stats a state shows: ``goal`` under a goal filter, else ``page`` under a page filter (either
    way, as Plausible's ``filtering_on_dimension?``), else ``default``."""
    names = {f.name for f in filters}
    return "goal" if "goal" in names else "page" if "page" in names else "default"


def top_entries(mode: str) -> list[dict[str, Any]]:
    """The tiles of ``mode``: ``[{"name", "label", "graphable"}]`` in Plausible's order."""
    return [{"name": name, "label": label, "graphable": name not in NOT_GRAPHABLE}
            for name, label in TOP_STATS[mode]]


def chart_metric(state: State, mode: str) -> str:
    """The chart's metric: the URL's when it is a top stat of this mode, else visitors (Plausible's dashboard
    falls back to visitors too when a filter removes the chosen stat)."""
    graphable = {name for name, _ in TOP_STATS[mode] if name not in NOT_GRAPHABLE}
    return state.metric if state.metric in graphable else "visitors"


def _plain(value: Any) -> float | None:
    """A metric's number: a revenue (Plausible's money object) gives its ``value``."""
    if isinstance(value, dict):
        return float(value["value"])
    return value  # type: ignore[no-any-return]


def _change(metric: str, value: float | None, previous: float | None) -> float | None:
    """Change against the previous period: percentage points for rates (:data:`POINTS`), else percent (None
    from zero or without a value)."""
    if previous is None or value is None:
        return None
    if metric in POINTS:
        return round(value - previous, 1)
    if not previous:
        return None
    return round((value - previous) / previous * 100, 1)


async def overview(resources: Resources, site: Site, state: State,
                   annotations: Sequence[Annotation] = ()) -> dict[str, Any]:
    """Top metrics (with their change when comparing) and the time series of the chart."""
    stats = Stats(resources, site, state.imports)
    mode = top_mode(state.filters)
    metric = chart_metric(state, mode)
    totals, used_first = await stats.top_stats(mode, state.date_range(), state.filters)
    imports = dict(stats.imports_meta)
    first = state.first or used_first or state.last
    days = (state.last - first).days + 1
    interval = state.interval or default_interval(days)
    check_interval(interval, days)
    previous_range = state.previous()
    jobs: list[Any] = [stats.series((metric,), first, state.last, interval, state.filters)]
    if previous_range is not None:
        dates = [previous_range[0].isoformat(), previous_range[1].isoformat()]
        jobs += [stats.top_stats(mode, dates, state.filters),
                 stats.series((metric,), *previous_range, interval, state.filters)]
    done = await asyncio.gather(*jobs)
    labels, series = done[0]
    previous_totals = done[1][0] if previous_range is not None else None
    shown = [(name, label) for name, label in TOP_STATS[mode]
             if not (name in REVENUE and totals[name] is None)
             and not (mode == "page" and imports.get("imports_included") and name in NOT_IMPORTED)]
    metrics = {}
    for name, _ in shown:
        previous = previous_totals[name] if previous_totals is not None else None
        metrics[name] = {"value": totals[name], "previous": previous,
                         "change": _change(name, _plain(totals[name]), _plain(previous))}
    top = [entry for entry in top_entries(mode) if entry["name"] in metrics]
    comparison = None
    if previous_range is not None:
        prev_labels, prev_series = done[2]
        comparison = {"from": previous_range[0].isoformat(), "to": previous_range[1].isoformat(),
                      "labels": prev_labels[:len(labels)],
                      "series": {m: v[:len(labels)] for m, v in prev_series.items()}}
    return {
        "site": site.domain, "timezone": site.timezone,
        "state": {**state.to_json(), "from": first.isoformat(), "interval": interval, "metric": metric},
        "top": top, "metrics": metrics, "series": {"labels": labels, "interval": interval, **series},
        "comparison": comparison,
        "imports": imports,
        "annotations": [{"date": note.date.isoformat(), "body": note.body} for note in annotations
                        if first <= note.date <= state.last],
    }


async def breakdown(resources: Resources, site: Site, state: State, name: str, dimension: str,
                    metrics: tuple[str, ...], limit: int) -> dict[str, Any]:
    """The top ``limit`` values of one dimension, by visitors.

    Under a goal filter a report other than goals and events shows the goal's conversions and conversion rate
    per value, as Plausible's dashboard does (its ``breakdown_metrics``: columns "Conversions" and "CR"; custom
    properties keep their events); the rate's divisor is the value's visitors (Stats API v2
    ``group_conversion_rate``). ``labels`` names the columns whose label differs from the metric's usual one;
    ``empty``, when present, what an empty report shows instead of the default (a site without goals).
    """
    stats = Stats(resources, site, state.imports)
    labels: dict[str, str] = {}
    asked = list(metrics)
    if top_mode(state.filters) == "goal" and name not in ("goal", "event"):
        prop = name.startswith(PROPS)
        metrics = ("visitors", "events", "conversion_rate") if prop else ("visitors", "conversion_rate")
        asked = ["group_conversion_rate" if m == "conversion_rate" else m for m in metrics]
        labels = {"conversion_rate": "CR"} if prop else {"visitors": "Conversions", "conversion_rate": "CR"}
    extra = [["is_not", "event:name", ["pageview"]]] if name == "event" else []
    answer = await stats.query(asked, state.date_range(), state.filters, dimensions=[dimension],
                               extra_filters=extra, order_by=[["visitors", "desc"]], pagination={"limit": limit})
    rows = [{"value": row.dimensions[0], **dict(zip(metrics, row.metrics, strict=True))} for row in answer.results]
    result: dict[str, Any] = {"dimension": name, "metrics": list(metrics), "labels": labels, "rows": rows,
                              "imports": dict(stats.imports_meta)}
    if name == "goal" and not rows:
        # An empty goals report of a site without goals says so, as Plausible's dashboard does, rather than
        # "no data for this range".
        async with resources.sessions() as session:
            if not await list_goals(session, site.id):
                result["empty"] = "No goals set up yet."
    if name == "event":
        # Conversion rate as Plausible defines it for goals (converted visitors / all visitors), computed
        # here because the engine's conversion_rate is a metric of goals only.
        totals, _ = await stats.totals(("visitors",), state.date_range(), state.filters)
        everyone = totals["visitors"]
        for row in rows:
            row["conversion_rate"] = round(row["visitors"] / everyone * 100, 1) if everyone else 0.0
        result["metrics"] = [*metrics, "conversion_rate"]
    return result


async def property_keys(resources: Resources, site: Site, state: State, limit: int = 50) -> list[str]:
    """Custom property keys seen in the range, from the analytics service (the only reader of events)."""
    params: dict[str, Any] = {"date_to": state.last.isoformat(), "limit": limit}
    if state.first is not None:
        params["date_from"] = state.first.isoformat()
    answer = await resources.services.json("analytics", "GET", f"/sites/{site.id}/property-keys", params=params)
    return msgspec.convert(answer, PropertyKeys).keys


async def realtime_visitors(resources: Resources, site: Site) -> int:
    answer = await resources.services.json("analytics", "GET", "/v1/realtime-visitors",
                                           params={"site_id": site.domain})
    return int(answer)


def live_token(resources: Resources, site: Site, user_id: int | None = None, epoch: int = 0) -> str:
    """Grants a WebSocket connection the site's live room (and the user's own messages).

    ``epoch`` is the user's session epoch: once it moves on (password change, sign-out everywhere) the token
    no longer opens a connection.
    """
    return sign_token(resources.settings.security.secret_key, WS_TOKEN_PURPOSE,
                      {"channels": [site_channel(site.id)], "user_id": user_id, "epoch": epoch}, WS_TOKEN_TTL)


def _created(site: Site) -> date:
    """The site's first local day: days before it are not zero traffic, they are no data."""
    return site.created_at.astimezone(ZoneInfo(site.timezone)).date() if site.created_at else date.min


INSIGHT_METRICS = frozenset({"visitors", "visits", "pageviews", "events"})
FORECAST_DAYS = 14


async def insights(resources: Resources, site: Site, state: State) -> dict[str, Any]:
    """Anomaly markers for the chart's buckets and, for a daily chart reaching today, a forecast band.

    Both come from the compute service (``POST /detect``, ``POST /forecast``); the chart's filters are not
    applied there, so a filtered chart gets neither (``note`` says so). A forecast needs 28 days of history:
    without them the band is left out.
    """
    empty: dict[str, Any] = {"anomalies": [], "forecast": [], "note": None}
    if state.filters:
        return {**empty, "note": "anomalies and forecasts are computed for the unfiltered site"}
    if state.metric not in INSIGHT_METRICS or state.first is None:
        return {**empty, "note": f"no anomalies or forecast for {state.metric}"}
    days = (state.last - state.first).days + 1
    interval = state.interval or default_interval(days)
    if interval not in ("hour", "day"):
        return {**empty, "note": "anomalies and forecasts are shown by hour or by day"}
    detect = resources.services.json("compute", "POST", "/detect", json={
        "site_id": site.domain, "metric": state.metric, "interval": interval,
        "date_range": [state.first.isoformat(), state.last.isoformat()]})
    jobs: list[Any] = [detect]
    today = local_today(site)
    if interval == "day" and state.last >= today - timedelta(days=1):
        jobs.append(resources.services.json("compute", "POST", "/forecast", json={
            "site_id": site.domain, "metric": state.metric, "horizon": FORECAST_DAYS,
            "date_range": [max(state.last - timedelta(days=364), _created(site)).isoformat(), state.last.isoformat()]}))
    done = await asyncio.gather(*jobs, return_exceptions=True)
    if isinstance(done[0], BaseException):
        raise done[0]
    anomalies = [{"label": p["time"], "value": p["value"], "score": p["score"], "explanation": p["explanation"]}
                 for p in done[0]["points"] if p["anomaly"]]
    forecast: list[dict[str, Any]] = []
    if len(done) > 1 and not isinstance(done[1], BaseException):
        forecast = [{"label": row["date"], "yhat": row["yhat"], "low": row["yhat_lower"], "high": row["yhat_upper"]}
                    for row in done[1]["forecast"]]
    return {"anomalies": anomalies, "forecast": forecast, "note": None}


COMPARE_PARAMS = PARAMS | {"goal", "prop", "a", "b"}


async def compare_values(resources: Resources, site: Site, state: State, params: Mapping[str, Sequence[str]]
                         ) -> dict[str, Any]:
    """The goal's conversion rate among visitors with ``prop`` = ``b`` against ``prop`` = ``a`` (compute service)."""
    values = {name: (_one(params, name) or "").strip() for name in ("goal", "prop", "a", "b")}
    for name, value in values.items():
        if not value:
            raise ClientError(f"{name}: required")
    if state.first is None:
        raise ClientError("period: choose a range with a first day to compare")
    dates = [state.first.isoformat(), state.last.isoformat()]
    segment = {"date_range": dates, "property": values["prop"]}
    answer: dict[str, Any] = await resources.services.json("compute", "POST", "/compare", json={
        "site_id": site.domain, "goal": values["goal"],
        "a": {**segment, "value": values["a"]}, "b": {**segment, "value": values["b"]}})
    return answer
