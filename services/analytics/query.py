"""Plausible's Stats API v2 query: parsed, validated and normalised before anything touches the database.

Every rule that Plausible's documentation states is checked here, and each failure is a
:class:`QueryError` whose message says exactly what is wrong (the API answers it with 400).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from app.core import inputs
from app.core.errors import ClientError
from app.core.inputs import InvalidInput, check_text
from app.core.periods import default_interval, local_day_bounds, month_end, month_start


class QueryError(ClientError):
    """An invalid Stats API query; the message names the offending part."""


class _InvalidFilter(QueryError):
    """A filter that fails Plausible's JSON schema: reported as ``#/filters/<n>: Invalid filter <filter>``."""

    def __init__(self) -> None:
        super().__init__("Invalid filter")


_SCHEMA_TYPES = ((bool, "Boolean"), (int, "Integer"), (float, "Number"), (str, "String"), (list, "Array"),
                 (dict, "Object"))


def elixir_inspect(value: object) -> str:
    """``value`` as Elixir's ``inspect`` prints the decoded JSON in Plausible's messages: strings quoted, lists
    in brackets, objects as ``%{"key" => value}``, null as ``nil``."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(elixir_inspect(v) for v in value) + "]"
    if isinstance(value, dict):
        return "%{" + ", ".join(f"{elixir_inspect(k)} => {elixir_inspect(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def type_mismatch(path: str, expected: str, value: object) -> QueryError:
    """The JSON-schema validator's type error in Plausible's answer (``ExJsonSchema``'s sentence)."""
    actual = next((name for kind, name in _SCHEMA_TYPES if isinstance(value, kind)), "Null")
    return QueryError(f"{path}: Type mismatch. Expected {expected} but got {actual}.")


METRICS = (
    "visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events",
    "percentage", "conversion_rate", "group_conversion_rate", "time_on_page", "scroll_depth", "total_revenue",
    "average_revenue",
)
SESSION_METRICS = frozenset({"bounce_rate", "views_per_visit", "visit_duration"})
EVENT_DIMENSIONS = frozenset({"event:page", "event:hostname", "event:name", "event:goal"})
VISIT_DIMENSIONS = frozenset({
    "visit:entry_page", "visit:entry_page_hostname", "visit:exit_page", "visit:exit_page_hostname",
    "visit:source", "visit:referrer", "visit:channel", "visit:utm_medium", "visit:utm_source",
    "visit:utm_campaign", "visit:utm_content", "visit:utm_term", "visit:device", "visit:screen", "visit:browser",
    "visit:browser_version", "visit:os", "visit:os_version", "visit:country", "visit:region", "visit:city",
    "visit:country_name", "visit:region_name", "visit:city_name",
})
TIME_DIMENSIONS = ("time", "time:hour", "time:day", "time:week", "time:month")
PROPS_PREFIX = "event:props:"
FILTER_OPERATORS = frozenset({"is", "is_not", "contains", "contains_not", "matches", "matches_not"})
LOGICAL_OPERATORS = frozenset({"and", "or", "not"})
BEHAVIORAL_OPERATORS = frozenset({"has_done", "has_not_done"})
"""Plausible's behavioural filters: ``["has_done", filter]`` keeps the visits with an event in the date range that
matches ``filter`` (event dimensions only), ``["has_not_done", filter]`` the others (``SQL.WhereBuilder``)."""
ONLY_TOP_LEVEL = ("event:goal", "event:hostname")
"""Dimensions Plausible filters only at the top level (or inside a behavioural filter)."""
DATE_SHORTCUTS = ("day", "24h", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all")
MAX_LIMIT = 10_000
MISSING_SITE_ID = "Missing site ID. Please provide the required site_id parameter with your request."
"""Plausible's answer to a query without a site (``PlausibleWeb.Plugs.AuthorizePublicAPI``)."""
MAX_OFFSET = 2**31 - 1
"""Largest pagination offset (PostgreSQL's ``integer``); beyond it no site has rows."""
MAX_RANGE_DAYS = 3660
"""A custom range spans at most ten years, given as dates or as date-times."""
MAX_SHORTCUT_DAYS = 5000
MAX_SHORTCUT_MONTHS = 100
MAX_FILTER_DEPTH = 5
MAX_CLAUSES = 100
MAX_CLAUSE_LENGTH = 2000


@dataclass(frozen=True)
class DateRange:
    """A half-open UTC interval ``[start, end)`` plus the local calendar days it covers."""

    start: datetime
    end: datetime
    first_day: date
    last_day: date
    timezone: str

    def previous(self) -> DateRange:
        """The period of the same length right before this one (for comparisons)."""
        days = (self.last_day - self.first_day).days + 1
        if self.end - self.start < timedelta(days=1):
            length = self.end - self.start
            return DateRange(self.start - length, self.start, self.first_day - timedelta(days=1),
                             self.first_day - timedelta(days=1), self.timezone)
        first = self.first_day - timedelta(days=days)
        return local_days(first, self.first_day - timedelta(days=1), self.timezone)


@dataclass(frozen=True)
class Condition:
    operator: str
    dimension: str
    clauses: tuple[str, ...]
    case_sensitive: bool = True


@dataclass(frozen=True)
class Logical:
    """``and``/``or`` of its children, ``not``, ``has_done`` or ``has_not_done`` of its one child."""

    operator: Literal["and", "or", "not", "has_done", "has_not_done"]
    children: tuple[Filter, ...]


Filter = Condition | Logical


@dataclass(frozen=True)
class Query:
    site: str
    metrics: tuple[str, ...]
    date_range: DateRange
    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    order_by: tuple[tuple[str, Literal["asc", "desc"]], ...] = ()
    time_labels: bool = False
    total_rows: bool = False
    limit: int = MAX_LIMIT
    offset: int = 0
    raw_date_range: Any = field(default=None, compare=False)
    imports: bool = False
    """Whether imported stats were asked for (``include.imports``); see :mod:`services.analytics.imports`."""

    @property
    def time_dimension(self) -> str | None:
        return next((d for d in self.dimensions if d in TIME_DIMENSIONS), None)

    def filtered_dimensions(self, *, behavioral: bool = True) -> set[str]:
        """Every dimension the filters read; ``behavioral=False`` leaves out those inside behavioural filters
        (Plausible's ``behavioral_filters: :ignore``)."""
        found: set[str] = set()

        def walk(item: Filter) -> None:
            if isinstance(item, Condition):
                found.add(item.dimension)
            elif behavioral or item.operator not in BEHAVIORAL_OPERATORS:
                for child in item.children:
                    walk(child)

        for item in self.filters:
            walk(item)
        return found


def local_days(first: date, last: date, tz: str) -> DateRange:
    start, end = local_day_bounds(first, last, tz)
    return DateRange(start=start, end=end, first_day=first, last_day=last, timezone=tz)


def resolve_date_range(value: object, tz: str, now: datetime, stats_start: date | None = None,
                       relative_date: date | None = None) -> DateRange:
    """Turn a ``date_range`` value into UTC bounds in the site's time zone, as Plausible does.

    Shortcuts are relative to ``relative_date`` (default: today in ``tz``): ``day`` is that day (up to
    now when it is today), ``Nd`` the N full days before it, ``Nmo`` the N full months before its month,
    ``month`` and ``year`` the whole calendar month and year, ``all`` from the first stats day on.
    """
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    anchor = relative_date or today
    if isinstance(value, str):
        if value == "day":
            if anchor == today:
                start = datetime.combine(anchor, time.min, zone).astimezone(UTC)
                return DateRange(start, now.astimezone(UTC), anchor, anchor, tz)
            return local_days(anchor, anchor, tz)
        if value == "24h":
            end = now.astimezone(UTC)
            start = end - timedelta(hours=24)
            return DateRange(start, end, start.astimezone(zone).date(), end.astimezone(zone).date(), tz)
        # Plausible takes any "<n>d" (1 to 5000 days) and "<n>mo" (1 to 100 months): the n days before today,
        # the n whole months before this one.
        if (match := re.fullmatch(r"([1-9][0-9]{0,3})d", value)) and int(match.group(1)) <= MAX_SHORTCUT_DAYS:
            days = int(match.group(1))
            return local_days(check_date(anchor - timedelta(days=days), "date_range"), anchor - timedelta(days=1), tz)
        if value == "month":
            return local_days(anchor.replace(day=1), month_end(anchor), tz)
        if (match := re.fullmatch(r"([1-9][0-9]{0,2})mo", value)) and int(match.group(1)) <= MAX_SHORTCUT_MONTHS:
            months = int(match.group(1))
            return local_days(check_date(month_start(anchor, months), "date_range"),
                              month_start(anchor) - timedelta(days=1), tz)
        if value == "year":
            return local_days(date(anchor.year, 1, 1), date(anchor.year, 12, 31), tz)
        if value == "all":
            return local_days(min(stats_start or anchor, anchor), anchor, tz)
        # Plausible's words (its JSON-schema error, reworded by SchemaErrorFormatter).
        raise QueryError(f"#/date_range: Invalid date range {elixir_inspect(value)}")
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return _custom_range(value[0], value[1], tz)
    raise QueryError(f"#/date_range: Invalid date range {elixir_inspect(value)}")


def _custom_range(first: str, last: str, tz: str) -> DateRange:
    try:
        if "T" in first or "T" in last:
            try:
                start, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
            except ValueError:
                # Plausible's words; Python's (an offset "strictly between -timedelta(hours=24) and …") say
                # nothing to an API client.
                raise QueryError(f"Invalid date_range '{json.dumps([first, last], ensure_ascii=False)}'.") from None
            if start.tzinfo is None or end.tzinfo is None:
                # Plausible's words: its date-time parser wants the offset.
                raise QueryError(f"Invalid date_range '{json.dumps([first, last], ensure_ascii=False)}'.")
            if end < start:
                raise QueryError("date_range: the end is before the start")
            _check_span(start.date(), end.date())
            zone = ZoneInfo(tz)
            # An inclusive end second, like Plausible's examples (…T15:59:59).
            return DateRange(start.astimezone(UTC), end.astimezone(UTC) + timedelta(seconds=1),
                             start.astimezone(zone).date(), end.astimezone(zone).date(), tz)
        first_day, last_day = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise QueryError(f"Invalid date_range '{json.dumps([first, last], ensure_ascii=False)}'.") from None
    if last_day < first_day:
        raise QueryError("date_range: the end date is before the start date")
    _check_span(first_day, last_day)
    return local_days(first_day, last_day, tz)


def _check_span(first: date, last: date) -> None:
    check_date(first, "date_range")
    check_date(last, "date_range")
    if (last - first).days > MAX_RANGE_DAYS:
        raise QueryError("date_range: a custom range spans at most ten years")


def check_date(day: date, where: str) -> date:
    """``day`` if it lies in [MIN_DATE, MAX_DATE]; else a QueryError naming ``where``."""
    try:
        return inputs.check_date(day, where)
    except InvalidInput as exc:
        raise QueryError(exc.detail) from None


def _check_text(value: str, where: str) -> None:
    try:
        check_text(value, where)
    except InvalidInput as exc:
        raise QueryError(exc.detail) from None


def dimension_kind(name: object, where: str) -> str:
    """``event``, ``visit`` or ``time`` for a valid dimension name; QueryError naming ``where`` otherwise."""
    if not isinstance(name, str):
        raise QueryError(f"{where}: Invalid dimension {elixir_inspect(name)}")
    _check_text(name, where)
    if name in EVENT_DIMENSIONS or name in VISIT_DIMENSIONS:
        return name.split(":", 1)[0]
    if name.startswith(PROPS_PREFIX) and 0 < len(name) - len(PROPS_PREFIX) <= 300:
        return "event"
    if name in TIME_DIMENSIONS:
        return "time"
    raise QueryError(f"{where}: Invalid dimension {elixir_inspect(name)}")


def _parse_clauses(dimension: str, clauses: object) -> list[str]:
    """A filter's clauses: strings, or (Plausible's QueryParser) GeoNames ids for visit:city, given back as
    strings; anything else (null, true, a number elsewhere, a mix) fails Plausible's schema: "Invalid filter"."""
    if not isinstance(clauses, list):
        raise _InvalidFilter
    if dimension == "visit:city" and clauses and all(type(c) is int for c in clauses):
        clauses = [str(c) for c in clauses]
    if not all(isinstance(c, str) for c in clauses):
        raise _InvalidFilter
    if not clauses:
        raise QueryError(f"filters: clauses of {dimension} must be a non-empty list")
    if len(clauses) > MAX_CLAUSES:
        raise QueryError(f"filters: a filter on {dimension} has at most {MAX_CLAUSES} clauses, got {len(clauses)}")
    if not all(len(c) <= MAX_CLAUSE_LENGTH for c in clauses):
        raise QueryError(f"filters: a clause of {dimension} has at most {MAX_CLAUSE_LENGTH} characters")
    for clause in clauses:
        _check_text(clause, f"filters: clause of {dimension}")
    return clauses


def _parse_filter(raw: object, depth: int = 0) -> Filter:
    if depth > MAX_FILTER_DEPTH:
        raise QueryError(f"filters: nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
        raise _InvalidFilter
    operator = raw[0]
    if operator in ("and", "or"):
        if len(raw) != 2 or not isinstance(raw[1], list) or not raw[1]:
            raise _InvalidFilter
        kind: Literal["and", "or"] = "and" if operator == "and" else "or"
        return Logical(kind, tuple(_parse_filter(child, depth + 1) for child in raw[1]))
    if operator == "not":
        if len(raw) != 2:
            raise _InvalidFilter
        return Logical("not", (_parse_filter(raw[1], depth + 1),))
    if operator in BEHAVIORAL_OPERATORS:
        if len(raw) != 2:
            raise _InvalidFilter
        behavioral: Literal["has_done", "has_not_done"] = "has_done" if operator == "has_done" else "has_not_done"
        return Logical(behavioral, (_parse_filter(raw[1], depth + 1),))
    if operator not in FILTER_OPERATORS:
        raise _InvalidFilter
    if len(raw) not in (3, 4):
        raise _InvalidFilter
    dimension, clauses = raw[1], raw[2]
    if dimension == "segment":
        raise QueryError("filters: segments are not supported")
    try:
        dimension_type = dimension_kind(dimension, "filters")
    except QueryError:
        raise _InvalidFilter from None
    # Plausible's schema: no time dimension, event:goal with is or contains only, clauses a list of strings.
    if dimension_type == "time" or (dimension == "event:goal" and operator not in ("is", "contains")):
        raise _InvalidFilter
    clauses = _parse_clauses(dimension, clauses)
    if dimension == "visit:country" and operator in ("is", "is_not") and any(len(c) != 2 for c in clauses):
        raise QueryError("Invalid visit:country filter, visit:country needs to be a valid 2-letter country code.")
    if operator in ("matches", "matches_not"):
        for pattern in clauses:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise QueryError(f"filters: invalid regular expression {pattern!r}: {exc}") from None
    case_sensitive = True
    if len(raw) == 4:
        modifiers = raw[3]
        # Plausible's schema: {"case_sensitive": boolean} on is, is_not, contains and contains_not only.
        if (not isinstance(modifiers, dict) or set(modifiers) - {"case_sensitive"}
                or operator not in ("is", "is_not", "contains", "contains_not")
                or not isinstance(modifiers.get("case_sensitive", True), bool)):
            raise _InvalidFilter
        case_sensitive = modifiers.get("case_sensitive", True)
    return Condition(operator, dimension, tuple(clauses), case_sensitive)


_KEYS = {"site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include", "pagination", "date"}


def parse_query(raw: object, *, timezone: str, now: datetime, stats_start: date | None = None,
                public: bool = False) -> Query:
    """Validate a v2 query body against Plausible's rules; raise QueryError naming what is wrong. ``public``: the
    body came through the public Stats API, which also applies the rules Plausible's dashboard is not held to
    (:func:`_check_public`)."""
    if not isinstance(raw, dict):
        raise type_mismatch("#", "Object", raw)
    # The JSON-schema validator's sentences (ExJsonSchema's), as Plausible answers them.
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise QueryError(f"#/{unknown[0]}: Schema does not allow additional properties.")
    missing = [key for key in ("site_id", "metrics", "date_range") if key not in raw]
    if len(missing) == 1:
        raise QueryError(f"#: Required property {missing[0]} was not present.")
    if missing:
        raise QueryError(f"#: Required properties {', '.join(missing)} were not present.")
    site = raw.get("site_id")
    if not isinstance(site, str):
        raise type_mismatch("#/site_id", "String", site)
    if not site:
        raise QueryError(MISSING_SITE_ID)

    metrics = _parse_metrics(raw.get("metrics"))

    relative_date = None
    if raw.get("date") is not None:
        try:
            relative_date = date.fromisoformat(str(raw["date"]))
        except ValueError:
            raise QueryError(f"date: not an ISO 8601 date: {raw['date']!r}") from None
        check_date(relative_date, "date")
    date_range = resolve_date_range(raw["date_range"], timezone, now, stats_start, relative_date)

    dimensions = raw.get("dimensions", [])
    if not isinstance(dimensions, list):
        raise type_mismatch("#/dimensions", "Array", dimensions)
    kinds = [dimension_kind(d, f"#/dimensions/{i}") for i, d in enumerate(dimensions)]
    if len(set(dimensions)) != len(dimensions):
        raise QueryError("#/dimensions: Expected items to be unique but they were not.")
    if kinds.count("time") > 1:
        raise QueryError("dimensions: at most one time dimension")

    raw_filters = raw.get("filters", [])
    if not isinstance(raw_filters, list):
        raise type_mismatch("#/filters", "Array", raw_filters)
    filters = tuple(_parse_top_filter(i, item) for i, item in enumerate(raw_filters))

    include = _parse_include(raw.get("include", {}))
    limit, offset = _parse_pagination(raw.get("pagination", {}))

    query = Query(
        site=site, metrics=tuple(metrics), date_range=date_range, dimensions=tuple(dimensions), filters=filters,
        order_by=_parse_order_by(raw.get("order_by"), metrics, dimensions),
        time_labels=include.get("time_labels", False), total_rows=include.get("total_rows", False),
        limit=limit, offset=offset, raw_date_range=raw["date_range"], imports=include.get("imports", False),
    )
    _check_combinations(query, kinds)
    if public:
        _check_public(query)
    return query


def _check_public(query: Query) -> None:
    """Plausible's Stats API rules that its own dashboard does not meet (its dashboard charts views per visit by
    day): ``views_per_visit`` neither under an ``event:page`` filter (a behavioural filter's does not count) nor
    with dimensions (``QueryBuilder.validate_metric``), in its words."""
    if "views_per_visit" not in query.metrics:
        return
    if "event:page" in query.filtered_dimensions(behavioral=False):
        raise QueryError("Metric `views_per_visit` cannot be queried with a filter on `event:page`.")
    if query.dimensions:
        raise QueryError("Metric `views_per_visit` cannot be queried with `dimensions`.")


def _parse_top_filter(index: int, raw: object) -> Filter:
    """A top-level filter; a schema failure anywhere inside it is reported on it, as Plausible does."""
    try:
        return _parse_filter(raw)
    except _InvalidFilter:
        raise QueryError(f"#/filters/{index}: Invalid filter {elixir_inspect(raw)}") from None


def _parse_metrics(metrics: object) -> list[str]:
    if not isinstance(metrics, list):
        raise type_mismatch("#/metrics", "Array", metrics)
    if not metrics:
        raise QueryError("#/metrics: Expected a minimum of 1 items but got 0.")
    for i, metric in enumerate(metrics):
        if not isinstance(metric, str) or metric not in METRICS:
            # Plausible's words (SchemaErrorFormatter).
            raise QueryError(f"#/metrics/{i}: Invalid metric {elixir_inspect(metric)}")
    if len(set(metrics)) != len(metrics):
        raise QueryError("#/metrics: Expected items to be unique but they were not.")
    return metrics


def _parse_include(include: object) -> dict[str, bool]:
    if not isinstance(include, dict):
        raise type_mismatch("#/include", "Object", include)
    unknown = sorted(set(include) - {"time_labels", "total_rows", "imports"})
    if unknown:
        raise QueryError(f"#/include/{unknown[0]}: Schema does not allow additional properties.")
    for key, value in include.items():
        if not isinstance(value, bool):
            raise type_mismatch(f"#/include/{key}", "Boolean", value)
    return include


def _parse_pagination(pagination: object) -> tuple[int, int]:
    if not isinstance(pagination, dict) or set(pagination) - {"limit", "offset"}:
        raise QueryError("pagination: an object with limit and offset")
    limit, offset = pagination.get("limit", MAX_LIMIT), pagination.get("offset", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"pagination.limit: an integer from 1 to {MAX_LIMIT}")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"pagination.offset: an integer from 0 to {MAX_OFFSET}")
    return limit, offset


def _parse_order_by(raw: object, metrics: list[str], dimensions: list[str]
                    ) -> tuple[tuple[str, Literal["asc", "desc"]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise QueryError("order_by: a list of [metric_or_dimension, \"asc\"|\"desc\"] pairs")
    result: list[tuple[str, Literal["asc", "desc"]]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and item[1] in ("asc", "desc")):
            raise QueryError(f"order_by: invalid entry {item!r}; expected [name, \"asc\"|\"desc\"]")
        if item[0] not in metrics and item[0] not in dimensions:
            # Plausible's words, the entry as Elixir prints it: a metric an atom, a dimension a string.
            name = f":{item[0]}" if item[0] in METRICS else json.dumps(item[0], ensure_ascii=False)
            raise QueryError(f"Invalid order_by entry '{{{name}, :{item[1]}}}'. Entry is not a queried metric or "
                             "dimension.")
        result.append((item[0], item[1]))
    return tuple(result)


def leaves(filters: tuple[Filter, ...], depth: int = 0, behavioral: int = 0) -> list[tuple[Condition, int, int]]:
    """Every condition of ``filters`` with its depth (0: top level) and how many behavioural filters hold it."""
    found: list[tuple[Condition, int, int]] = []
    for item in filters:
        if isinstance(item, Condition):
            found.append((item, depth, behavioral))
        else:
            found += leaves(item.children, depth + 1, behavioral + (item.operator in BEHAVIORAL_OPERATORS))
    return found


def _check_filters(query: Query) -> None:
    """Plausible's rules on where a filter may stand (``QueryBuilder``'s ``validate_toplevel_only_filter_dimension``,
    ``validate_special_metrics_filters`` and ``validate_behavioral_filters``), with its messages."""
    conditions = leaves(query.filters)
    nested = next((c.dimension for c, depth, behavioral in conditions
                   if depth > 0 and not behavioral and c.dimension in ONLY_TOP_LEVEL), None)
    if nested:
        raise QueryError(f"Invalid filters. Dimension `{nested}` can only be filtered at the top level.")
    if {"conversion_rate", "group_conversion_rate"} & set(query.metrics) and any(
            depth > 0 and c.dimension.startswith(PROPS_PREFIX) for c, depth, _ in conditions):
        raise QueryError("Invalid filters. When `conversion_rate` or `group_conversion_rate` metrics are used, "
                         "custom property filters can only be used on top level.")
    for condition, _, behavioral in conditions:
        if behavioral > 1:
            raise QueryError("Invalid filters. Behavioral filters (has_done, has_not_done) cannot be nested.")
        if behavioral and not condition.dimension.startswith("event:"):
            raise QueryError("Invalid filters. Behavioral filters (has_done, has_not_done) can only be used with "
                             "event dimension filters.")


GOALS_DOCS = "https://plausible.io/docs/stats-api#filtering-by-goals"


def check_goals_exist(query: Query, configured: set[str]) -> None:
    """Plausible's ``validate_filtered_goals_exist``: every clause of an ``is`` filter on ``event:goal`` (at any
    depth, behavioural filters too) names a goal of the site; ``contains`` may match nothing."""
    for condition, _, _ in leaves(query.filters):
        if condition.dimension == "event:goal" and condition.operator == "is" and condition.case_sensitive:
            missing = next((c for c in condition.clauses if c not in configured), None)
            if missing is not None:
                raise QueryError(f"Invalid filters. The goal `{missing}` is not configured for this site. "
                                 f"Find out how to configure goals here: {GOALS_DOCS}")


def _ticked(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _check_combinations(query: Query, kinds: list[str]) -> None:
    """Plausible's rules on metrics, dimensions and filters together (``QueryBuilder.validate_metric``,
    ``TableDecider.validate_no_metrics_dimensions_conflict``), in its words where a rule is its own."""
    _check_filters(query)
    # As Plausible's metric rules, a dimension filtered only inside a behavioural filter does not count.
    uses = set(query.dimensions) | query.filtered_dimensions(behavioral=False)
    event_dimensions = [d for d, kind in zip(query.dimensions, kinds, strict=True) if kind == "event"]
    session_metrics = [m for m in query.metrics if m in SESSION_METRICS]
    if session_metrics and any(d not in ("event:page", "event:hostname") for d in event_dimensions):
        raise QueryError(f"Session metric(s) {_ticked(session_metrics)} cannot be queried along with event "
                         f"dimension(s) {_ticked(event_dimensions)}")
    if "event:hostname" in event_dimensions and session_metrics and "event:page" not in query.dimensions:
        raise QueryError(f"Session metric(s) {_ticked(session_metrics)} cannot be queried along with event "
                         f"dimension(s) {_ticked(event_dimensions)}")
    if "percentage" in query.metrics and not query.dimensions:
        raise QueryError("metrics: percentage requires at least one dimension")
    for metric in ("conversion_rate", "group_conversion_rate"):
        if metric in query.metrics and "event:goal" not in uses:
            raise QueryError(f"Metric `{metric}` can only be queried with event:goal filters or dimensions.")
    if "time_on_page" in query.metrics and "event:page" not in uses:
        raise QueryError("Metric `time_on_page` can only be queried with event:page filters or dimensions.")
    if "scroll_depth" in query.metrics and "event:page" not in query.dimensions and not any(
            isinstance(item, Condition) and item.dimension == "event:page" for item in query.filters):
        # Plausible's words: a page filter nested in a logical one does not count.
        raise QueryError("Metric `scroll_depth` can only be queried with event:page filters or dimensions.")
    if query.time_labels and query.time_dimension is None:
        raise QueryError("Invalid include.time_labels: requires a time dimension.")
    if query.time_dimension == "time:hour" and (query.date_range.last_day - query.date_range.first_day).days > 31:
        raise QueryError("dimensions: time:hour spans at most 31 days")


def time_bucket(query: Query) -> str | None:
    """The concrete bucket of the query's time dimension (``time`` picks one from the range)."""
    dimension = query.time_dimension
    if dimension is None:
        return None
    if dimension != "time":
        return dimension.split(":", 1)[1]
    return default_interval((query.date_range.last_day - query.date_range.first_day).days + 1)


def time_labels(query: Query) -> list[str]:
    """Every bucket label in the range, as Plausible formats them."""
    bucket = time_bucket(query)
    first, last = query.date_range.first_day, query.date_range.last_day
    labels: list[str] = []
    if bucket == "hour":
        zone = ZoneInfo(query.date_range.timezone)
        hour = query.date_range.start.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        while hour < query.date_range.end:
            labels.append(hour.strftime("%Y-%m-%d %H:%M:%S"))
            hour = (hour.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
    elif bucket == "day":
        labels = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    elif bucket == "week":
        week = first - timedelta(days=first.weekday())
        while week <= last:
            labels.append(max(week, first).isoformat())
            week += timedelta(days=7)
    elif bucket == "month":
        month = first.replace(day=1)
        while month <= last:
            labels.append(max(month, first).isoformat())
            month = month_start(month, -1)
    return labels
