# ruff: noqa: S608 - statements are assembled from fixed fragments; every value from a query is a bind parameter
"""Imported stats in answers: when the ``imported_*`` daily aggregates can answer a query, and the merge.

The rules are Plausible's (``Plausible.Stats.Imported.Base.decide_tables``, ``Query.get_skip_imported_reason``,
``Plausible.Stats.QueryResult``):

- Imports count when asked for (``include.imports`` in v2, ``with_imported=true`` in v1, the dashboard's
  toggle) and only completed imports count.
- Skip reasons, checked in this order: ``no_imported_data`` (no completed import), ``out_of_range`` (none
  overlaps the range's days), ``unsupported_interval`` (hourly buckets: imports are daily),
  ``unsupported_query`` (the dimensions and filters do not all live in one imported table, see
  :func:`decide_table`).
- ``meta.imports_included``, ``meta.imports_skip_reason`` and ``meta.imports_warning`` appear when imports were
  asked for; the warning only for ``unsupported_query`` and ``unsupported_interval``, in Plausible's words.

Metrics of a merged group: visitors, visits, pageviews and events are native + imported; bounce rate, visit
duration and views per visit are recomputed from both sides' bounces, total duration, visit pageviews and
visits (exact on both sides, where Plausible reverse-engineers the native side from rounded values);
percentage is the group's merged visitors over the merged total. Per table, as Plausible reads them: entry
pages count ``entrances`` as visits, exit pages ``exits``; custom events have ``events`` and no pageviews or
visits; pages carry no bounces or durations. ``scroll_depth`` is Plausible's merge (``SpecialMetrics``
``maybe_add_scroll_depth`` with imports): the native visits' depths summed plus the imported pages'
``total_scroll_depth``, over the native visits with a depth plus ``total_scroll_depth_visits``, rounded half to
even; null when neither side has a visit with a depth. ``time_on_page`` likewise (Plausible's imported
``total_time_on_page`` merge): the native seconds (current and legacy parts, see
:func:`engine._time_on_page`) plus the imported pages' ``total_time_on_page`` (seconds), over the native visits
and transitions plus ``total_time_on_page_visits``, rounded half to even; null when both sides have none.
Plausible adds imports to its current-definition part only; an import holding time on page was recorded with
engagement events, so Beacon adds it whatever its own (data-driven) legacy cutoff, and Plausible has no
imported time-on-page warning (only ``legacy_time_on_page_used`` for the native legacy part).

Not answered from imports (``unsupported_query``, where Plausible has a dedicated path): goals
(``event:goal`` dimension or filter, conversion rates) and custom properties.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.engine import (
    COUNTRY_NAMES_JSON,
    DIRECT,
    NOT_SET,
    PAGE_DIMENSIONS,
    Result,
    _default_order,
    _like_escape,
    clause_array,
    country_name_sql,
)
from services.analytics.query import TIME_DIMENSIONS, Condition, Filter, Query, time_bucket

TABLES: dict[str, str] = {
    "visit:source": "imported_sources", "visit:channel": "imported_sources", "visit:referrer": "imported_sources",
    "visit:utm_source": "imported_sources", "visit:utm_medium": "imported_sources",
    "visit:utm_campaign": "imported_sources", "visit:utm_term": "imported_sources",
    "visit:utm_content": "imported_sources",
    "visit:entry_page": "imported_entry_pages", "visit:exit_page": "imported_exit_pages",
    "visit:country": "imported_locations", "visit:region": "imported_locations", "visit:city": "imported_locations",
    "visit:country_name": "imported_locations",
    "visit:device": "imported_devices", "visit:screen": "imported_devices",
    "visit:browser": "imported_browsers", "visit:browser_version": "imported_browsers",
    "visit:os": "imported_operating_systems", "visit:os_version": "imported_operating_systems",
    "event:page": "imported_pages", "event:hostname": "imported_pages",
    "event:name": "imported_custom_events",
}
"""Which imported table holds each dimension (Plausible's ``property_to_table_mappings``)."""

COLUMNS: dict[str, str] = {
    "visit:source": "source", "visit:channel": "channel", "visit:referrer": "referrer",
    "visit:utm_source": "utm_source", "visit:utm_medium": "utm_medium", "visit:utm_campaign": "utm_campaign",
    "visit:utm_term": "utm_term", "visit:utm_content": "utm_content",
    "visit:entry_page": "entry_page", "visit:exit_page": "exit_page",
    "visit:country": "country", "visit:region": "region", "visit:city": "city", "visit:country_name": "country",
    "visit:device": "device", "visit:screen": "device", "visit:browser": "browser",
    "visit:browser_version": "browser_version",
    "visit:os": "operating_system", "visit:os_version": "operating_system_version",
    "event:page": "page", "event:hostname": "hostname", "event:name": "name",
}
"""The imported column of each dimension (Plausible's CSV export column names)."""

EMPTY_LABELS: dict[str, str] = {
    "visit:source": DIRECT, "visit:referrer": DIRECT, "visit:channel": NOT_SET, "visit:device": NOT_SET,
    "visit:screen": NOT_SET,
    "visit:browser": NOT_SET, "visit:browser_version": NOT_SET, "visit:os": NOT_SET, "visit:os_version": NOT_SET,
}
"""How an empty imported value is shown; a dimension not listed here leaves empty values out of its groups."""

WARNINGS = {
    "unsupported_query": "Imported stats are not included in the results because query parameters are not "
                         "supported. For more information, see: "
                         "https://plausible.io/docs/stats-api#filtering-imported-stats",
    "unsupported_interval": "Imported stats are not included because the time dimension (i.e. the interval) is "
                            "too short.",
}
"""Plausible's ``imports_warning`` texts (``Plausible.Stats.QueryResult``)."""

SESSION = frozenset({"bounce_rate", "visit_duration", "views_per_visit"})
NATIVE_ONLY = frozenset({"total_revenue", "average_revenue"})
"""Metrics answered from Beacon's own events alone when imports are included: the imported tables carry no
revenue."""
SCROLL_HIDDEN = ("__scroll_depth_total", "__scroll_depth_visits")
"""Native components of scroll depth (see :func:`engine._scroll_depth`), never shown."""
TIME_ON_PAGE_HIDDEN = ("__time_on_page_total", "__time_on_page_visits")
"""Native components of time on page (see :func:`engine._time_on_page`), never shown."""
NO_IMPORTED_SCROLL_DEPTH = {"code": "no_imported_scroll_depth",
                            "warning": "No imports with scroll depth data were found"}
"""Plausible's ``metric_warnings.scroll_depth`` when imports are included and none in range has scroll depth."""
UNSUPPORTED_METRICS = frozenset({"conversion_rate", "group_conversion_rate"})
HIDDEN = ("__bounces", "__duration", "__session_visits", "__visit_pageviews", "__bounce_visits")
"""Native components of the session metrics (see :func:`engine.build`), never shown: ``__bounce_visits`` are the
visits the bounce rate divides by (under a page filter those entering where it keeps, see
:func:`engine.bounce_entry_filter`), ``__session_visits`` those the visit duration and views per visit divide by."""
EVERYTHING = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Imports:
    """What a query does with imported stats."""

    requested: bool
    skip_reason: str | None
    table: str | None = None
    import_ids: tuple[int, ...] = ()

    @property
    def included(self) -> bool:
        return self.requested and self.skip_reason is None

    def meta(self) -> dict[str, Any]:
        """Plausible's imports meta fields (only when imports were asked for)."""
        if not self.requested:
            return {}
        meta: dict[str, Any] = {"imports_included": self.included}
        if self.skip_reason is not None:
            meta["imports_skip_reason"] = self.skip_reason
            if self.skip_reason in WARNINGS:
                meta["imports_warning"] = WARNINGS[self.skip_reason]
        return meta


def decide_table(query: Query) -> str | None:
    """The one imported table that answers the query's dimensions and filters, or None (``unsupported_query``).

    Plausible's ``decide_tables``: time dimensions go anywhere; without other dimensions or filters the answer is
    ``imported_visitors``; otherwise every dimension and filtered dimension must live in the same table.
    """
    if set(query.metrics) & UNSUPPORTED_METRICS:
        return None
    if query.filtered_dimensions() != query.filtered_dimensions(behavioral=False):
        return None  # imported stats have no visits to tell who did what (behavioural filters)
    used = [d for d in (*query.dimensions, *sorted(query.filtered_dimensions())) if d not in TIME_DIMENSIONS]
    tables = {TABLES.get(d) for d in used}
    if not tables:
        return "imported_visitors"
    if len(tables) != 1 or None in tables:
        return None
    return tables.pop()


async def _completed(session: AsyncSession, site_id: int) -> list[tuple[int, date, date]]:
    rows = await session.execute(text(
        "SELECT id, start_date, end_date FROM site_imports WHERE site_id = :site AND status = 'completed' "
        "ORDER BY id"), {"site": site_id})
    return [(int(i), start, end) for i, start, end in rows]


async def resolve(session: AsyncSession, query: Query, site_id: int) -> Imports:
    """Whether and from where imported stats join the answer, with Plausible's skip reason otherwise."""
    if not query.imports:
        return Imports(False, None)
    completed = await _completed(session, site_id)
    first, last = query.date_range.first_day, query.date_range.last_day
    in_range = [i for i, start, end in completed if start <= last and end >= first]
    table = decide_table(query)
    if not completed:
        reason: str | None = "no_imported_data"
    elif not in_range:
        reason = "out_of_range"
    elif time_bucket(query) == "hour":
        reason = "unsupported_interval"
    elif table is None:
        reason = "unsupported_query"
    else:
        reason = None
    return Imports(True, reason, table, tuple(in_range))


async def scroll_depth_warning(session: AsyncSession, query: Query, imports: Imports) -> dict[str, str] | None:
    """Plausible's ``no_imported_scroll_depth`` warning: ``scroll_depth`` asked for with imports included, and no
    import in range has scroll depth data (``site_imports.has_scroll_depth``). None otherwise."""
    if "scroll_depth" not in query.metrics or not imports.included or not imports.import_ids:
        return None
    with_scroll = (await session.execute(text(
        "SELECT bool_or(has_scroll_depth) FROM site_imports WHERE id = ANY(:ids)"),
        {"ids": list(imports.import_ids)})).scalar()
    return None if with_scroll else dict(NO_IMPORTED_SCROLL_DEPTH)


# --- the imported side ---------------------------------------------------------------------------------------

def _components(table: str) -> dict[str, str]:
    """SQL of each component on ``table`` (what Plausible's ``select_imported_metrics`` reads)."""
    visits = {"imported_entry_pages": "entrances", "imported_exit_pages": "exits"}.get(table, "visits")
    if table == "imported_custom_events":
        return {"visitors": "sum(visitors)", "visits": "0", "pageviews": "0", "events": "sum(events)",
                "bounces": "0", "duration": "0", "session_visits": "0", "bounce_visits": "0", "visit_pageviews": "0",
                "vpv_visits": "0",
                "scroll_total": "0", "scroll_visits": "0", "top_total": "0", "top_visits": "0"}
    pages = table == "imported_pages"
    return {
        "visitors": "sum(visitors)", "visits": f"sum({visits})", "pageviews": "sum(pageviews)",
        "events": "sum(pageviews)",
        "bounces": "0" if pages else "sum(bounces)",
        "duration": "0" if pages else "sum(visit_duration)",
        "session_visits": "0" if pages else f"sum({visits})",
        # Pages carry no bounces: under a page filter only the native visits entering there count (Plausible's
        # imported bounce_rate on imported_pages is 0 bounces over 0 visits).
        "bounce_visits": "0" if pages else f"sum({visits})",
        "visit_pageviews": "sum(pageviews)", "vpv_visits": f"sum({visits})",
        # Scroll depth is a page's: only imported_pages has it (Plausible's select_imported_metrics).
        "scroll_total": "sum(total_scroll_depth)" if pages else "0",
        "scroll_visits": "sum(total_scroll_depth_visits)" if pages else "0",
        # So is time on page (seconds summed over the visits that reported engaged time).
        "top_total": "sum(total_time_on_page)" if pages else "0",
        "top_visits": "sum(total_time_on_page_visits)" if pages else "0",
    }


class _Binds:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def bind(self, value: Any) -> str:
        name = f"i{len(self.params)}"
        self.params[name] = value
        return f":{name}"


def _condition(cond: Condition, binds: _Binds) -> str:
    column = COLUMNS[cond.dimension]
    if cond.dimension == "visit:city":  # a GeoNames id (bigint, none: 0), compared as text as the native side
        column = "CAST(coalesce(city, 0) AS text)"
    elif cond.dimension == "visit:country_name":
        column = country_name_sql(column, binds.bind(COUNTRY_NAMES_JSON))
    empty = EMPTY_LABELS.get(cond.dimension)
    values = ["" if empty is not None and v == empty else v for v in cond.clauses]
    folded = not cond.case_sensitive
    target = f"lower({column})" if folded else column

    def wanted(texts: list[str]) -> str:
        return clause_array(binds.bind(texts), folded)

    if cond.operator in ("is", "is_not"):
        if cond.dimension in PAGE_DIMENSIONS and any("*" in v for v in values):
            expr = f"{target} LIKE ANY({wanted([_like_escape(v).replace('*', '%') for v in values])})"
        else:
            expr = f"{target} = ANY({wanted(values)})"
    elif cond.operator in ("contains", "contains_not"):
        expr = f"{target} LIKE ANY({wanted([f'%{_like_escape(v)}%' for v in values])})"
    else:
        expr = f"{column} ~ ANY({binds.bind(list(cond.clauses))})"
    return f"NOT ({expr})" if cond.operator.endswith("_not") else expr


def _filter(item: Filter, binds: _Binds) -> str:
    if isinstance(item, Condition):
        return _condition(item, binds)
    parts = [_filter(child, binds) for child in item.children]
    if item.operator == "not":
        return f"NOT ({parts[0]})"
    return "(" + f" {item.operator.upper()} ".join(parts) + ")"


def _dimension_sql(dimension: str, query: Query, binds: _Binds) -> tuple[str, str | None]:
    """(label expression, condition keeping the group) of a dimension on an imported table."""
    if dimension in TIME_DIMENSIONS:
        bucket = time_bucket(query)
        if bucket == "day":
            return "date", None
        first = binds.bind(query.date_range.first_day)
        return f"greatest(CAST(date_trunc('{bucket}', date) AS date), CAST({first} AS date))", None
    column = COLUMNS[dimension]
    if dimension in EMPTY_LABELS:
        return f"coalesce(nullif({column}, ''), '{EMPTY_LABELS[dimension]}')", None
    if dimension == "visit:country":
        return column, f"{column} NOT IN ('', 'ZZ')"
    if dimension == "visit:country_name":
        return country_name_sql(column, binds.bind(COUNTRY_NAMES_JSON)), f"{column} NOT IN ('', 'ZZ')"
    if dimension == "visit:city":  # Plausible's imported city groups leave out the unknown city (0)
        return column, f"coalesce({column}, 0) <> 0"
    return column, f"{column} <> ''"


async def imported_groups(session: AsyncSession, query: Query, site_id: int, imports: Imports,
                          dimensions: Sequence[str] | None = None) -> dict[tuple[Any, ...], dict[str, float]]:
    """Components per group (labels as the native answer shows them) from the completed imports in range."""
    assert imports.table is not None
    dims = list(query.dimensions if dimensions is None else dimensions)
    binds = _Binds({"site": site_id, "ids": list(imports.import_ids), "first": query.date_range.first_day,
                    "last": query.date_range.last_day})
    where = ["site_id = :site", "import_id = ANY(:ids)", "date >= :first", "date <= :last"]
    where += [_filter(item, binds) for item in query.filters]
    labels = []
    for dimension in dims:
        label, keep = _dimension_sql(dimension, query, binds)
        labels.append(label)
        if keep:
            where.append(keep)
    if dims:
        where.append("visitors > 0")
    components = _components(imports.table)
    select = [f"{label} AS d{n}" for n, label in enumerate(labels)]
    select += [f"coalesce({sql}, 0) AS {name}" for name, sql in components.items()]
    group = f" GROUP BY {', '.join(f'd{n}' for n in range(len(dims)))}" if dims else ""
    rows = await session.execute(text(
        f"SELECT {', '.join(select)} FROM {imports.table} WHERE {' AND '.join(where)}{group}"), binds.params)
    found: dict[tuple[Any, ...], dict[str, float]] = {}
    for row in rows:
        key = tuple(v.isoformat() if isinstance(v, date) else v for v in row[:len(dims)])
        found[key] = {name: float(row[len(dims) + n]) for n, name in enumerate(components)}
    return found


# --- the merge -----------------------------------------------------------------------------------------------

def _round(value: float, places: int = 0) -> float:
    """Round half away from zero, as PostgreSQL's ``round`` does for the native metrics."""
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


Native = Callable[[Query], Awaitable[Result]]


async def answer(session: AsyncSession, query: Query, site_id: int, imports: Imports, native: Native) -> Result:
    """The answer to ``query`` with the imported stats of ``imports`` merged in; ``native`` answers a query from
    Beacon's own events (the planner)."""
    wanted = {"visitors", "visits", "pageviews", "events"} & set(query.metrics)
    if "percentage" in query.metrics:
        wanted.add("visitors")
    if SESSION & set(query.metrics):
        wanted |= {"bounce_rate", *HIDDEN}
    if "time_on_page" in query.metrics:
        wanted |= {"time_on_page", *TIME_ON_PAGE_HIDDEN}
    if "scroll_depth" in query.metrics:
        wanted |= {"scroll_depth", *SCROLL_HIDDEN}
    wanted |= NATIVE_ONLY & set(query.metrics)
    metrics = tuple(m for m in ("visitors", "visits", "pageviews", "events", "bounce_rate", "time_on_page",
                                "scroll_depth", *sorted(NATIVE_ONLY), *HIDDEN, *SCROLL_HIDDEN,
                                *TIME_ON_PAGE_HIDDEN) if m in wanted)
    inner = dataclasses.replace(query, metrics=metrics, order_by=(), limit=EVERYTHING, offset=0, time_labels=False,
                                total_rows=False, imports=False)
    native_rows = {tuple(row["dimensions"]): dict(zip(metrics, row["metrics"], strict=True))
                   for row in (await native(inner)).rows}
    imported = await imported_groups(session, query, site_id, imports)

    total = 0.0
    if "percentage" in query.metrics:
        totals = await native(dataclasses.replace(inner, dimensions=(), metrics=("visitors",)))
        total = float(totals.rows[0]["metrics"][0] or 0) if totals.rows else 0.0
        total += sum(c["visitors"] for c in (await imported_groups(session, query, site_id, imports, ())).values())

    rows = []
    for key in [*native_rows, *(k for k in imported if k not in native_rows)]:
        mine = native_rows.get(key, {})
        theirs = imported.get(key, {})
        rows.append({"dimensions": list(key),
                     "metrics": [_value(m, mine, theirs, total) for m in query.metrics]})
    rows = _ordered(query, rows)
    return Result(rows[query.offset:query.offset + query.limit], len(rows))


def _value(metric: str, mine: dict[str, Any], theirs: dict[str, float], total: float) -> Any:
    def both(native_name: str, imported_name: str) -> float:
        return float(mine.get(native_name) or 0) + theirs.get(imported_name, 0.0)

    if metric in ("visitors", "visits", "pageviews", "events"):
        return int(both(metric, metric))
    if metric == "percentage":
        return _round(100 * both("visitors", "visitors") / total, 1) if total else None
    if metric in NATIVE_ONLY:
        return mine.get(metric)
    if metric == "time_on_page":
        # Seconds per visit with engaged time (native: plus the legacy transitions), half to even as natively.
        top_visits = both("__time_on_page_visits", "top_visits")
        return round(both("__time_on_page_total", "top_total") / top_visits) if top_visits else None
    if metric == "scroll_depth":
        # Percent per visit with a depth; Python's round of a float is half to even, as ClickHouse's.
        depth_visits = both("__scroll_depth_visits", "scroll_visits")
        return round(both("__scroll_depth_total", "scroll_total") / depth_visits) if depth_visits else None
    if metric == "bounce_rate":
        entered = both("__bounce_visits", "bounce_visits")
        return int(_round(100 * both("__bounces", "bounces") / entered)) if entered else 0
    visits = both("__session_visits", "session_visits")
    if metric == "visit_duration":
        return int(_round(both("__duration", "duration") / visits)) if visits else 0
    # views_per_visit
    vpv_visits = float(mine.get("__session_visits") or 0) + theirs.get("vpv_visits", 0.0)
    return _round(both("__visit_pageviews", "visit_pageviews") / vpv_visits, 2) if vpv_visits else 0.0


def _ordered(query: Query, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the query's order (or Plausible's default), nulls last, ties by dimension values."""
    rows = sorted(rows, key=lambda row: tuple("" if v is None else str(v) for v in row["dimensions"]))
    for name, direction in reversed(query.order_by or _default_order(query)):
        if name in query.dimensions:
            index = query.dimensions.index(name)

            def key(row: dict[str, Any], index: int = index) -> Any:
                return row["dimensions"][index]
        else:
            index = query.metrics.index(name)

            def key(row: dict[str, Any], index: int = index) -> Any:
                return row["metrics"][index]
        present = [r for r in rows if key(r) is not None]
        missing = [r for r in rows if key(r) is None]
        rows = sorted(present, key=key, reverse=direction == "desc") + missing
    return rows
