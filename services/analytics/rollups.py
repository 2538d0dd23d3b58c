# ruff: noqa: S608 - statements are assembled from fixed fragments; every value from a query is a bind parameter
"""Rollups: exact answers for the dashboard's queries without scanning a year of events.

Distinct counts are the hard part: visitors are not additive across days. Beacon's visitor ids change with
the daily salt, so one id has events on at most two or three consecutive local days. The rollups therefore
store *spans*: for every (visitor, dimension value) pair the first and last local day it had events, and for
every visit the first and last local day of its events with the visit's totals; what is stored is only the
number of pairs (``visitors``) and of visits (``visits``, with their bounces, duration and pageviews summed)
per (value, first day, last day), in one row (migration 0026). A visitor is counted in a period exactly when its
span intersects the period, so

    visitors(value, period) = sum of visitors over rows with first_day <= period.last and last_day >= period.first

is exact, and so are visits, bounce rate, visit duration and views per visit. Pageviews and events are
additive and stored per day (but for the pairs in :data:`DAYS_LEFT_OUT`, and for :data:`PAIR_TOTALS`, which
count visitors only).

Days are rolled up once they are final (two days ago in the site's time zone) by a worker job. Queries read
spans that began before the boundary from the rollup tables, and compute the spans of the days since then
with the same definitions, so both parts join without double counting: the visitors, visits and day counts
of visit dimensions from the visits table (:func:`table_scan_ctes`), pages from their events. Results are
identical to the engine's over raw events: tests compare the two on generated data.

Yesterday is rolled up early, *provisionally*, once every visit that had events on it has ended (no event of
such a visit within the visit timeout): from then on its visits, its pageviews and events and the set of
(visitor, value) pairs beginning on it no longer change; only the last day of a visitor's span may still grow
into today. A span that began yesterday intersects every period that ends by yesterday whatever its last
day, so queries ending by yesterday (7d, 30d, 6mo, 12mo: the dashboard's usual ranges) are answered from the
rollups alone. Stored, such a span ends yesterday; it still intersects every period holding yesterday, so
queries reaching into today read the provisional day from the rollups too when none of their time buckets
begins on a day such a span may still reach (``month``, one bucket, unless today is the 1st; see
:meth:`State.rolled_for`), and compute yesterday from the events otherwise (by day). The final roll-up of
the day replaces the provisional rows.

A query filtered to one value of a rolled-up dimension (``visit:country is DE``), grouped by time or by that
dimension only, is that dimension's rollup restricted to the value (see :func:`only_value`); the visit
dimensions with few values (:data:`PAIRED`) are also rolled up in pairs, so that such a filter grouped by another
of them (or the entry page with source and country, :data:`ENTRY_PAIRED`) is the pair's rollup restricted to the
value (see :func:`paired`), and two such filters the pair's rows of both values (see :func:`both_paired`), or with
a source and a country, grouped by page, entry page, device or browser, that pair's rows with the third
(:func:`two_paired_by`); pages are rolled up with a few visit
dimensions both ways, so that one page by source or one country by page reads the pair's rows of the value (see
:func:`page_paired`); one value of a custom property by time is that value's rows of :data:`PROPS`, and by a few
visit dimensions the rows of its pair with them (:data:`PROPS_PAIRS`). Goals (but
one custom event's, read as its name), conversion rates, time on page and other filtered queries are not rolled
up: :func:`applicable` leaves them to the other sources of :mod:`services.analytics.planner`. Nor is the bounce
rate under a page filter (Plausible's: of the visits entering on the page), but by nothing or time with the page as
the entry page too, the rows of :data:`PAGE_ENTRY` with the page in both parts (:func:`bounce_read`), which the
planner reads apart.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.engine import (
    NO_PROP,
    QUERY_SETTINGS,
    SESSION_COLUMNS,
    TABLE_EXPRESSIONS,
    VISIT_COLUMNS,
    VISIT_EXPRESSIONS,
    VISIT_SPAN,
    Result,
    _Sql,
    bounce_entry_filter,
    finish,
    prepare,
    rows_to_result,
    visit_events_select,
)
from services.analytics.query import PROPS_PREFIX, TIME_DIMENSIONS, Condition, Query, time_bucket

EVENT_DIMENSIONS = ("event:page", "event:name")
VISIT_DIMENSIONS = (
    "visit:entry_page", "visit:exit_page", "visit:source", "visit:channel", "visit:utm_source",
    "visit:utm_medium", "visit:utm_campaign", "visit:device", "visit:browser", "visit:os", "visit:country",
)
ROLLED = ("", *EVENT_DIMENSIONS, *VISIT_DIMENSIONS)
PAIRED = ("visit:source", "visit:country", "visit:device", "visit:browser")
"""Visit dimensions rolled up in pairs too (see :func:`paired`): few values each, so a pair's spans stay small
(country x source: 54,378 rows for 434,788 visits in the 1 M-event benchmark, see docs/benchmarks.md)."""
ENTRY_PAIRED = ("visit:source", "visit:country")
"""Visit dimensions also rolled up in pairs with the entry page (``<dimension>|visit:entry_page``): the entry pages
panel under a source or country filter (migration 0017). The 10 M-event benchmark read them from the visits table
in 0.4-1.7 s."""
PAIRS = (*(f"{a}|{b}" for i, a in enumerate(PAIRED) for b in PAIRED[i + 1:]),
         *(f"{d}|visit:entry_page" for d in ENTRY_PAIRED))
"""Stored dimension names of the pairs; a pair's value is ``<length of the first>:<first><second>``."""
PAGE_EVENTS = "event:page+custom"
"""The page of every event, pageviews and custom events alike: what an ``event:page`` filter keeps (the
``event:page`` dimension counts pageviews only). Rolled up alone and paired with :data:`PAGE_PAIRED`, with the
visits' spans (see :func:`spans_sql`), so that a page filter over a year reads the page's spans."""
PAGE_PAIRED = ("visit:source", "visit:country", "visit:entry_page", "visit:device", "visit:browser")
"""Visit dimensions rolled up in pairs with the page a filter keeps (``<PAGE_EVENTS>|<dimension>``, see
:func:`page_paired`): a page filter grouped by one of them."""
PAGES_PAIRED = ("visit:source", "visit:country")
"""Visit dimensions rolled up in pairs with pages (``<dimension>|event:page``): one of their values grouped by
page. Both lists are what the 1 M-event benchmark showed slow, not more: a page's pairs have about as many rows
as (visitor, page) pairs, 0.4 to 0.9 per event each (docs/benchmarks.md). The filtered value comes first, so a
filter reads its rows through the values' index (migration 0016)."""
PAGES_TWO_PAIRED = ("visit:source|visit:country",)
"""Pairs of visit dimensions (:data:`PAIRS`) rolled up with pages too (``<pair>|event:page``, a pair's value as the
first part): a source and a country together grouped by page, the pages panel under the dashboard's two usual
filters, which read the year's pageviews of the visits with both values joined with their visit before (migration
0028: over 12 months of 10 M events 0.6-1.0 s warm, 4.4-6.7 s from a cold cache, after 145 ms and 169 ms;
docs/benchmarks.md, runs 25 and 26). They cost 0.24 spans and as many day rows per event, direct visits left out
(:func:`_unlabelled`; the database went from 1,798 to 2,061 bytes per event, run 27): other pairs of filters by page
are left to the join."""
VISITS_TWO_PAIRED = ("visit:entry_page", "visit:device", "visit:browser")
"""Visit dimensions rolled up with the pairs of :data:`PAGES_TWO_PAIRED` too (``<pair>|<dimension>``, visitor and
visit spans, no day counts): the entry pages, devices and browsers panels under a source and a country together,
which read the visits with both values from the visits by country before (migration 0029: the entry pages of 12
months at 10 M events 285-400 ms warm, 1.8-2.7 s from a cold cache, after 50-60 ms and 164 ms; docs/benchmarks.md,
runs 26-28). They cost 0.17 spans per event, most of them the entry pages' (the database went from 2,061 to 2,197
bytes per event, run 28). Direct visits are left out as from the pages (:func:`_unlabelled`)."""
TWO_VISIT_PAIRS = tuple(f"{p}|{d}" for p in PAGES_TWO_PAIRED for d in VISITS_TWO_PAIRED)
PAGE_PAIRS = (*(f"{PAGE_EVENTS}|{d}" for d in PAGE_PAIRED), *(f"{d}|event:page" for d in PAGES_PAIRED),
              *(f"{p}|event:page" for p in PAGES_TWO_PAIRED))
PAGE_ROLLED = (PAGE_EVENTS, *PAGE_PAIRS)
PAGE_ENTRY = f"{PAGE_EVENTS}|visit:entry_page"
"""The visits with events on a page by their entry page: with the page as the entry page too, the visits a page
filter's ``bounce_rate`` counts (see :func:`bounce_read`)."""
NAME_PAIRED = ("visit:source", "visit:country", "visit:entry_page", "visit:device", "visit:browser")
"""Visit dimensions rolled up in pairs with the names of custom events (``event:name|<dimension>``, pageviews left
out, see :func:`page_paired`): a goal completed by a custom event (read as its name) grouped by one of them, the
goal-filtered sources, countries, devices, browsers and entry pages panels, which read every event of the goal
joined with its visit before (migration 0018: 0.6-0.8 s over 12 months of 10 M events, 3.2 s from a cold cache).
Custom events are a few percent of the events, so their pairs are small."""
NAME_PAIRS = tuple(f"event:name|{d}" for d in NAME_PAIRED)
PROPS = "event:props"
"""Custom properties (``event:props:<key>``): the spans and day counts of every (key, value) an event holds, its
value stored as ``<length of the key>:<key><value>`` (the pairs' encoding). One value's rows answer a filter
``event:props:<key> is <value>`` by time or by nothing, the dashboard's top stats and graph under a property
filter, which read the GIN index of the properties and every matching event's visit before: 400 ms warm and
4-17 s from a cold cache over 12 months of 10 M events, once past the 30 s statement timeout (migration 0022,
docs/benchmarks.md). Visits are stored as a page's are (see :func:`_visit_spans`). Only events with properties
are read, a few percent of them."""
PROPS_VALUE_BYTES = 2000
"""The longest stored :data:`PROPS` value, in bytes of UTF-8: ingest keeps keys of up to 300 characters and values
of up to 2,000, and PostgreSQL refuses an index row over 2,704 bytes (the rollups' keys hold the value). Longer
ones are not rolled up, and a filter on one is answered from the events (:func:`_kept_value`)."""
PROPS_PAIRED = NAME_PAIRED
"""Visit dimensions rolled up in pairs with custom properties (``event:props|<dimension>``, see
:func:`page_paired`): the sources, countries, devices, browsers and entry pages panels under a property filter,
which read every event with the value joined with its visit before (migration 0027: the entry pages of a value
over 30 days of 10 M events 275 ms warm, 884 ms from a cold cache, 5.0 s over 12 months; docs/benchmarks.md, run
23). Events with properties are a few percent of the events, so their pairs are small."""
PROPS_PAIRS = tuple(f"{PROPS}|{d}" for d in PROPS_PAIRED)
PAIR_FIRST_BYTES = 750
"""The longest first part (bytes of UTF-8) of a pair with the entry page stored: ``rollup_spans_first`` (migration
0023) holds a pair's first part as its key and the whole value besides, so a first part of P bytes beside an entry
page of up to 1,000 takes 2P + 1,000 bytes and more of a 2,704-byte index row. Values that do not compress (random
text) of 800 bytes beside such a page already fail the row (PostgreSQL: "index row size 2712 exceeds btree version
4 maximum 2704"), and with it the day's roll-up and every refresh after. A page longer than this is not paired
with the entry page (:data:`PAGE_ENTRY`), and a property value (``<length of the key>:<key><value>``) longer than
this not paired at all (:func:`fits_pair`): a filter on one grouped by such a dimension is answered from the events
(:func:`page_paired`, :func:`both_paired`, :func:`pair_total`)."""
STORED = (*ROLLED, *PAIRS, *PAGE_ROLLED, *NAME_PAIRS, PROPS, *PROPS_PAIRS, *TWO_VISIT_PAIRS)
"""Every dimension the rollups store."""
DAYS_LEFT_OUT = frozenset({*(f"{PAGE_EVENTS}|{d}" for d in PAGE_PAIRED),
                           *(f"{d}|visit:entry_page" for d in ENTRY_PAIRED), *NAME_PAIRS, *PROPS_PAIRS,
                           *TWO_VISIT_PAIRS})
"""Pairs stored without their pageviews and events per day (migration 0021): a page, source, country or goal
filter grouped by another dimension, whose dashboard reports show visitors, visits and rates. Their day counts
were 9 of the 13.5 M day rows at 10 M events (docs/benchmarks.md); a query asking them for pageviews or events
is left to the other sources (:func:`applicable`)."""
DAYS_STORED = tuple(d for d in STORED if d not in DAYS_LEFT_OUT)
"""The dimensions whose pageviews and events per day the rollups store."""
PAIR_TOTALS = frozenset(f"{pair}#any" for pair in (*PAIRS, *PAGE_PAIRS, *NAME_PAIRS, *PROPS_PAIRS)
                        if pair.endswith("|visit:country"))
"""Visitor spans of the pairs grouped by country counted per value of their first part, over the events with
a country (``visit:source|visit:country#any``: per source, the visitors with a country; migration 0021): the
divisor of the countries report's percentage under a source, page or event name filter, which counts the
filtered visitors with a country (see ``planner.percentage_apart``). Summing the pair's countries would count a
visitor seen in two countries twice."""
PAIR_ROWS = "strpos(dimension, '|') > 0 AND right(dimension, 4) <> '#any'"
"""The rows of the pairs whose value holds both parts (:data:`PAIRS`, :data:`PAGE_PAIRS`, :data:`NAME_PAIRS`,
:data:`PROPS_PAIRS`; not
:data:`PAIR_TOTALS`): the condition of ``rollup_spans_first`` (migration 0023), which indexes them by their first
part and last day. A statement reading one first part's rows states it, so that the planner may use the index
whatever the dimension's bind parameter (a generic plan does not know it). At 10 M events the month's entry pages
under a page filter read the page's 22,898 spans in 4-9 ms, 140 through the primary key (docs/benchmarks.md,
run 19)."""
EVENT_METRICS = frozenset({"visitors", "pageviews", "events", "percentage"})
VISIT_METRICS = EVENT_METRICS | {"visits", "bounce_rate", "visit_duration", "views_per_visit"}
CHUNK_DAYS = 7
FINAL_AFTER_DAYS = 2
"""A local day is rolled up when it ended this many days ago: every visit that touches it has ended."""
VISIT_TIMEOUT = timedelta(minutes=30)
"""Inactivity that ends a visit (the ingest service's ``session_timeout``)."""


def _any(dimension: str) -> str:
    """The pseudo-dimension counting visitors with any (non-empty) value: the percentage's total."""
    return f"{dimension}#any"


def _pair(dimension: str) -> tuple[str, str] | None:
    """A pair's two parts; the first of ``<pair>|event:page`` (:data:`PAGES_TWO_PAIRED`) is itself a pair."""
    first, bar, second = dimension.rpartition("|")
    return (first, second) if bar else None


def _flat(dimension: str) -> tuple[str, ...]:
    """The dimensions a stored one is made of: a pair's (its first part's too when that is a pair), else itself."""
    return tuple(dimension.removesuffix("#any").split("|"))


def fits_pair(first: str, value: str, second: str) -> bool:
    """Whether ``value`` of ``first`` (:data:`PAGE_EVENTS` or ``event:page`` for a page, :data:`PROPS` in its
    stored form) is stored in its pair with ``second``: a property value or a page beside the entry page only up to
    :data:`PAIR_FIRST_BYTES` (:func:`_condition` leaves the longer ones out of the roll-up)."""
    return not _first_bounded(first, second) or len(value.encode()) <= PAIR_FIRST_BYTES


def _first_bounded(first: str, second: str) -> bool:
    """Whether a pair stores first parts of at most :data:`PAIR_FIRST_BYTES` only: a property's pairs, and a page's
    with the entry page (:data:`PAGE_ENTRY`)."""
    return first == PROPS or (first == PAGE_EVENTS and second == "visit:entry_page")


def _part(value: str, part: int) -> str:
    """SQL for the first (1) or second (2) value of a pair's stored ``value`` (see :data:`PAIRS`); NULL for the
    site total's empty value, which a condition on a part may meet once PostgreSQL pushes it into the union of
    stored and computed spans."""
    length = f"nullif(split_part({value}, ':', 1), '')::int"
    start = f"strpos({value}, ':') + 1"
    return f"substr({value}, {start}, {length})" if part == 1 else f"substr({value}, {start} + {length})"


def _value(dimension: str) -> str:
    if (pair := _pair(dimension)) is not None:
        first, second = (_value(d) for d in pair)
        return f"(char_length({first}) || ':' || {first} || {second})"
    if dimension == "":
        return "''"
    if dimension in ("event:page", PAGE_EVENTS):
        return "e.pathname"
    if dimension == "event:name":
        return "e.name"
    if dimension == PROPS:
        return "(char_length(e.prop_key) || ':' || e.prop_key || e.prop_value)"
    column, empty = VISIT_COLUMNS[dimension]
    return f"e.v_{column}" if empty is None else f"coalesce(nullif(e.v_{column}, ''), '{empty}')"


def _condition(dimension: str) -> str:
    """Which events a dimension's spans count, as the engine's filters do for the same query."""
    if (pair := _pair(dimension)) is not None:
        custom = ["e.name <> 'pageview'"] if pair[0] == "event:name" else []
        # A first part short enough for the pair's rows to fit an index row (PAIR_FIRST_BYTES).
        short = [f"octet_length({_value(pair[0])}) <= {PAIR_FIRST_BYTES}"] if _first_bounded(*pair) else []
        return " AND ".join([*custom, *short, *(_condition(d) for d in pair if d != PROPS)])
    if dimension == "event:page":
        return "e.name = 'pageview'"
    if dimension == PROPS:
        return f"octet_length({_value(PROPS)}) <= {PROPS_VALUE_BYTES}"
    if dimension in VISIT_COLUMNS and VISIT_COLUMNS[dimension][1] is None:
        return f"e.v_{VISIT_COLUMNS[dimension][0]} <> ''"
    return "TRUE"


def _visit_spans(dimension: str) -> str | None:
    """How a dimension's visits are stored (the rows' ``visits`` and their totals), None when they are not:
    ``"visit"`` for visit dimensions and their pairs (a visit's value holds for the whole visit, so its span is
    the visit's days), ``"page"`` for :data:`PAGE_EVENTS` and its pairs, and for ``event:name`` (one span per
    visit and page or event name, the days of the visit's events on the page or of that name: the days a page
    filter, or a filter on the name or on a goal completed by it, counts the visit in)."""
    if dimension.endswith("#any"):
        return None
    parts = _flat(dimension)
    if parts[0] in (PAGE_EVENTS, "event:name", PROPS):
        return "page"
    return "visit" if all(p == "" or p in VISIT_COLUMNS for p in parts) else None


def _with_totals(dimensions: tuple[str, ...], totals: bool = True) -> list[tuple[str, str, str]]:
    """(stored name, value expression, condition) for each dimension and, with ``totals``, its percentage
    total; a pair's total (:data:`PAIR_TOTALS`) is its first part's value over the pair's events."""
    parts = []
    for dimension in dimensions:
        if dimension in PAIR_TOTALS:
            pair = dimension.removesuffix("#any")
            parts.append((dimension, _value(pair.split("|")[0]), _condition(pair) + _unlabelled(dimension)))
            continue
        parts.append((dimension, _value(dimension), _condition(dimension) + _unlabelled(dimension)))
        if totals and _has_total(dimension):
            parts.append((_any(dimension), "''", _condition(dimension)))
    return parts


def _unlabelled(dimension: str) -> str:
    """A further condition leaving out the events of visits without a value (stored under the empty value's label,
    ``Direct / None``) from a stored dimension whose first part is only ever a filter's value: the pages of one
    source (``visit:source|event:page``), the pages, entry pages, devices and browsers of one source and country
    (:data:`PAGES_TWO_PAIRED`, :data:`TWO_VISIT_PAIRS`), and the visitors with a country per source
    (:data:`PAIR_TOTALS`). A filter keeping the label is not read from the rollups (:func:`_kept_value`), so those
    rows would never be read: 38 % of the generated visits are direct."""
    if not (dimension.endswith("|event:page") or dimension in PAIR_TOTALS or len(_flat(dimension)) == 3):
        return ""
    return "".join(f" AND e.v_{VISIT_COLUMNS[d][0]} <> ''" for d in _flat(dimension)[:-1]
                   if d in VISIT_COLUMNS and VISIT_COLUMNS[d][1] is not None)


def _has_total(dimension: str) -> bool:
    """Whether the dimension's percentage divides by its own total (the visitors with a non-empty value),
    stored as :func:`_any`; the others' divide by every visitor (dimension '')."""
    return dimension == "event:page" or (dimension in VISIT_COLUMNS and VISIT_COLUMNS[dimension][1] is None)


def _events_of(dimension: str) -> str:
    """The relation a dimension's spans and day counts read the scan's events (with their visit's columns) from:
    ``vev``, and for :data:`PROPS` and its pairs one row per property of each event with properties (``prop_key``,
    ``prop_value``: the JSON string's text, as ingest stores every value)."""
    if dimension != PROPS and not dimension.startswith(f"{PROPS}|"):
        return "vev"
    return ("(SELECT x.*, p.key AS prop_key, p.value AS prop_value FROM vev x "
            "CROSS JOIN LATERAL jsonb_each_text(x.props) p WHERE x.props <> '{}'::jsonb)")


SPAN_DAYS = "\n            min(day) OVER w AS v_first_day, max(day) OVER w AS v_last_day"
EVENT_SOURCES = {
    "entry_hostname": {"hostname"}, "exit_hostname": {"hostname"}, "source": {"referrer_source"},
    "referrer": {"referrer"}, "channel": {"channel"}, "utm_medium": {"utm_medium"}, "utm_source": {"utm_source"},
    "utm_campaign": {"utm_campaign"}, "utm_content": {"utm_content"}, "utm_term": {"utm_term"},
    "device": {"device"}, "browser": {"browser"}, "browser_version": {"browser_version"}, "os": {"os"},
    "os_version": {"os_version"}, "country": {"country"},
}
"""Event columns each visit attribute is computed from (besides time, name, page and interactivity)."""


def scan_ctes(columns: Iterable[str] | None = tuple(VISIT_EXPRESSIONS), kept: str = "", props: bool = False) -> str:
    """Events of the scan window with their local day and their visit's attributes ``columns`` (``vev``), and
    one row per visit (``sv``); with ``columns=None`` (no visit attribute or metric needed) just the events;
    ``kept``: a further condition on the events (``e``), with ``columns=None`` only; ``props``: the events'
    properties too (:data:`PROPS`)."""
    wanted = None if columns is None else {*columns, *SESSION_COLUMNS}
    # Only the columns the statement reads: sorting whole event rows for the visit window cost more than
    # computing the window.
    needed = {*SCAN_COLUMNS, *(["props"] if props else [])}
    for name in wanted or ():
        needed |= EVENT_SOURCES.get(name, set())
    if wanted is None:
        return "\n    " + _events_cte("vev", needed, kept)
    events = "\n    " + _events_cte("ev", needed, kept)
    assert not kept, "a condition on the events would change the visits' windows"
    return f"""{events},
    vev AS MATERIALIZED ({visit_events_select("ev", wanted, SPAN_DAYS)}),
    sv AS MATERIALIZED (SELECT DISTINCT ON (session_id) * FROM vev ORDER BY session_id)"""


SCAN_COLUMNS = ("id", "visitor_id", "session_id", "timestamp", "name", "pathname", "interactive")
"""The event columns every span and day count reads."""


def _events_cte(name: str, columns: Iterable[str], kept: str = "", materialized: bool = True) -> str:
    """The scan window's events (``columns`` and their local day) as the CTE ``name``, materialised unless
    ``materialized`` is false."""
    return f"""{name} AS {'' if materialized else 'NOT '}MATERIALIZED (
        SELECT {', '.join(f'e.{c}' for c in sorted(columns))}, {local_day('e.timestamp')} AS day
        FROM events e WHERE e.site_id = :site AND e.timestamp >= :scan_start AND e.timestamp < :scan_end{kept}
    )"""


def table_scan_ctes(columns: Iterable[str], events: bool = True, kept_events: str = "", kept_visits: str = "",
                    props: bool = False, visits_of_events: bool = False) -> str:
    """The scan's visits (``sv``) with their ``columns`` read from the visits table (``sessions``) instead of
    computed by a window over every event of the scan (:func:`scan_ctes`), each visit's pageviews and events
    per local day (``vd``), and with ``events`` the scan's events with their visit's columns (``vev``): what
    queries reaching into today use for the days since the rollups end.

    The same spans and day counts as :func:`scan_ctes` gives: a visit's attributes and totals are the visits
    table's (folded by PostgreSQL with the window's definitions, see docs/architecture.md) and its first and
    last local day those of its first and last event; the spans read only visits and visitors whose first day
    is within the scan's days, whose events are all in the scan, as no event lies after now. A visit within one
    local day counts its totals on it; the few crossing midnight count their events per day, found through the
    ``(site_id, session_id)`` index (as :mod:`services.analytics.visits` splits them). ``kept_events`` and
    ``kept_visits``: further conditions on the events (``e``) and the visits (``s``), when the query reads one
    value's spans only; ``props``: the events' properties too (:data:`PROPS`); ``visits_of_events``: only the
    visits of the kept events (when nothing but the events' spans read the visits)."""
    wanted = {*columns, *SESSION_COLUMNS}
    names = [name for name in VISIT_EXPRESSIONS if name in wanted]
    visit = "".join(f", {TABLE_EXPRESSIONS[n]} AS v_{n}" for n in names)
    days = f", {local_day('s.started_at')} AS v_first_day, {local_day('s.ended_at')} AS v_last_day"
    visits_of_events = visits_of_events and events  # without the events, there are none to keep visits of
    # Read once by vev, the events are not materialised apart: under a visit filter PostgreSQL then reads the kept
    # visits' events through the (site_id, session_id) index, not every event of the scan joined with the visits
    # (the month's pages under a country 143 -> 106 ms at 10 M events; docs/benchmarks.md, run 30). With
    # ``visits_of_events`` the visits read them too.
    ev = _events_cte("ev", (*SCAN_COLUMNS, *(["props"] if props else [])), kept_events,
                     materialized=visits_of_events)
    if visits_of_events:
        kept_visits += " AND s.session_id IN (SELECT session_id FROM ev)"
    ctes = [
        *([ev] if visits_of_events else []),
        f"""sv AS MATERIALIZED (
        SELECT s.session_id, s.visitor_id, s.events AS v_events{visit}{days} FROM sessions s
        WHERE s.site_id = :site AND s.started_at < :scan_end AND s.ended_at >= :scan_start
          AND s.started_at >= CAST(:scan_start AS timestamptz) - interval '{VISIT_SPAN.days} day'{kept_visits}
    )""",
        f"""vd AS (
        SELECT e.*, e.v_first_day AS day, e.v_pageviews AS d_pageviews, e.v_events AS d_events
        FROM sv e WHERE e.v_first_day = e.v_last_day
        UNION ALL
        SELECT e.*, x.day, x.pageviews, x.events FROM sv e CROSS JOIN LATERAL (
            SELECT {local_day('x.timestamp')} AS day, count(*) FILTER (WHERE x.name = 'pageview')
                AS pageviews, count(*) AS events FROM events x
            WHERE x.site_id = :site AND x.session_id = e.session_id AND x.timestamp >= e.v_started_at
              AND x.timestamp <= e.v_ended_at GROUP BY 1) x
        WHERE e.v_first_day <> e.v_last_day
    )""",
    ]
    if events:
        if not visits_of_events:
            ctes.append(ev)
        # Kept visits have a value other than the default an event without its visit gets: the others' events
        # count for nothing, so they are not carried (a third of the tail's time for a page under a source).
        join = "JOIN" if kept_visits else "LEFT JOIN"
        ctes.append(f"""vev AS MATERIALIZED (
        SELECT ev.*{''.join(f', sv.v_{n}' for n in names)}, sv.v_first_day, sv.v_last_day
        FROM ev {join} sv ON sv.session_id = ev.session_id
    )""")
    return "\n    " + ",\n    ".join(ctes)


def spans_sql(dimensions: tuple[str, ...], with_visits: bool = True, totals: bool = True,
              visitors_from_visits: bool = False) -> str:
    """Spans that begin between :from_day and :to_day, for each dimension, and with ``totals`` the percentage
    totals: rows ``(dimension, value, first_day, last_day, visitors, visits, bounces, duration, pageviews)``, the
    visitor spans with ``visits`` 0 and the visit spans with ``visitors`` 0 (a stored row sums both, see
    :func:`_roll`).

    ``visitors_from_visits``: the visitor spans of visit dimensions from the visits (``sv``: a visitor's days
    with a value are the days of its visits with it, from the first visit's first day to the last's last day),
    not from every event (``vev``); what :func:`table_scan_ctes` is for."""
    selects = []
    for name, value, condition in _with_totals(dimensions, totals):
        if visitors_from_visits and _visit_spans(name.removesuffix("#any")) == "visit":
            days, source = "min(e.v_first_day) AS first_day, max(e.v_last_day) AS last_day", "sv"
        else:
            days, source = "min(e.day) AS first_day, max(e.day) AS last_day", _events_of(name)
        selects.append(
            f"SELECT '{name}' AS dimension, value, first_day, last_day, count(*) AS visitors, 0 AS visits, "
            "0 AS bounces, 0::numeric AS duration, 0 AS pageviews FROM ("
            f"SELECT e.visitor_id, {value} AS value, {days} "
            f"FROM {source} e WHERE {condition} GROUP BY 1, 2) p "
            "WHERE first_day BETWEEN :from_day AND :to_day GROUP BY value, first_day, last_day"
        )
        kind = _visit_spans(name) if with_visits else None
        if kind == "page":
            selects.append(
                f"SELECT '{name}', value, first_day, last_day, 0, count(*), count(*) FILTER (WHERE bounce), "
                "sum(duration), sum(pageviews) FROM ("
                f"SELECT e.session_id, {value} AS value, min(e.day) AS first_day, max(e.day) AS last_day, "
                "bool_and(e.v_pageviews <= 1 AND e.v_interactive_events = 0) AS bounce, "
                "max(extract(epoch FROM e.v_ended_at - e.v_started_at)) AS duration, max(e.v_pageviews) AS pageviews "
                f"FROM {_events_of(name)} e WHERE {condition} GROUP BY 1, 2) p "
                "WHERE first_day BETWEEN :from_day AND :to_day GROUP BY value, first_day, last_day"
            )
        elif kind == "visit":
            selects.append(
                f"SELECT '{name}', {value}, e.v_first_day, e.v_last_day, 0, count(*), "
                "count(*) FILTER (WHERE e.v_pageviews <= 1 AND e.v_interactive_events = 0), "
                "sum(extract(epoch FROM e.v_ended_at - e.v_started_at)), sum(e.v_pageviews) "
                f"FROM sv e WHERE e.v_first_day BETWEEN :from_day AND :to_day AND {condition} GROUP BY 2, 3, 4"
            )
    return " UNION ALL ".join(selects)


def days_sql(dimensions: tuple[str, ...], visit_days: bool = False) -> str:
    """Pageviews and events per local day between :from_day and :to_day, for each dimension.

    ``visit_days``: those of visit dimensions from each visit's counts per day (``vd``, see
    :func:`table_scan_ctes`), not from every event."""
    selects = []
    for name, value, condition in _with_totals(dimensions, totals=False):
        if visit_days and _visit_spans(name) == "visit":
            selects.append(f"SELECT '{name}' AS dimension, {value} AS value, e.day, sum(e.d_pageviews) AS pageviews, "
                           f"sum(e.d_events) AS events FROM vd e "
                           f"WHERE e.day BETWEEN :from_day AND :to_day AND {condition} GROUP BY 2, 3")
        else:
            selects.append(f"SELECT '{name}' AS dimension, {value} AS value, e.day, count(*) FILTER "
                           f"(WHERE e.name = 'pageview') AS pageviews, count(*) AS events FROM {_events_of(name)} e "
                           f"WHERE e.day BETWEEN :from_day AND :to_day AND {condition} GROUP BY 2, 3")
    return " UNION ALL ".join(selects)


def _midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, ZoneInfo(tz))


def local_day(column: str) -> str:
    """SQL: the local day of the instant ``column`` (of an event or a visit of the scan, see :func:`window`).

    Where the time zone's UTC offset is the same over the whole scan, ``:day_zero`` plus the number of local
    midnights (``:midnights``, ascending) at or before the instant, which ``width_bucket`` finds by a binary
    search; otherwise ``AT TIME ZONE``. The same day either way: with one offset, local midnights are where the
    local date changes, and nowhere else. PostgreSQL folds the parameter's test away when it plans the statement.
    The conversion cost 0.3 µs a row: 15-25 ms of the 62,567 events the current month's pages read for today at
    10 M events, against about 1 ms for the search (docs/benchmarks.md, run 30)."""
    return (f"CASE WHEN CAST(:midnights AS timestamptz[]) IS NULL THEN ({column} AT TIME ZONE :tz)::date "
            f"ELSE CAST(:day_zero AS date) + (width_bucket({column}, CAST(:midnights AS timestamptz[])) - 1) END")


OFFSET_STEP = timedelta(minutes=15)
"""How finely :func:`midnights` checks that a time zone's UTC offset stays the same: no time zone's offset
changes and changes back within a quarter of an hour."""


@functools.lru_cache(maxsize=4096)
def midnights(first: date, last: date, tz: str) -> tuple[datetime, ...] | None:
    """The local midnights beginning ``first``..``last`` and the one after, when ``tz``'s UTC offset is the same
    from the first to the last of them; None when it changes in between (a daylight saving time switch), where
    :func:`local_day` converts: with one offset the local date changes at the midnights and nowhere else, which
    is not checked for a switch (one back from 00:30 to 23:30 would give the date back)."""
    zone = ZoneInfo(tz)
    bounds = tuple(_midnight(first + timedelta(days=n), tz) for n in range((last - first).days + 2))
    offset, moment = bounds[0].utcoffset(), bounds[0]
    while moment <= bounds[-1]:
        if moment.astimezone(zone).utcoffset() != offset:
            return None
        moment += OFFSET_STEP
    return bounds


def window(first: date, last: date, tz: str) -> dict[str, Any]:
    """Scan parameters for spans beginning on ``first``..``last``: a day before (to see where spans began)
    and a day after (to see where they end), as the engine's visit window does; and the local midnights of
    :func:`local_day`, from the day before the earliest visit the scan reads to the day after the latest."""
    scan_start = _midnight(first, tz) - timedelta(days=1)
    scan_end = _midnight(last + timedelta(days=1), tz) + timedelta(days=1)
    zone = ZoneInfo(tz)
    lowest = (scan_start - VISIT_SPAN).astimezone(zone).date() - timedelta(days=1)
    highest = (scan_end + VISIT_SPAN).astimezone(zone).date()
    bounds = midnights(lowest, highest, tz)
    return {"from_day": first, "to_day": last, "tz": tz, "scan_start": scan_start, "scan_end": scan_end,
            "day_zero": lowest, "midnights": list(bounds) if bounds is not None else None}


# --- building ---------------------------------------------------------------------------------------


@dataclass
class RefreshResult:
    site_id: int
    rolled_until: date | None
    days: int


def refresh(conn: Connection, site_id: int, now: datetime, visit_timeout: timedelta = VISIT_TIMEOUT) -> RefreshResult:
    """Roll up the site's final days not rolled up yet (at most a chunk per call; call until days == 0), then
    yesterday provisionally once its visits have ended."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('beacon.rollups'), CAST(:site AS int))"),
                 {"site": site_id})
    site = conn.execute(text("SELECT timezone FROM sites WHERE id = :site"), {"site": site_id}).first()
    if site is None:
        return RefreshResult(site_id, None, 0)
    tz = str(site[0])
    state = conn.execute(text("SELECT timezone, rolled_until, provisional_day FROM rollup_state WHERE site_id = :site"),
                         {"site": site_id}).first()
    if state is not None and state[0] != tz:
        forget(conn, site_id)  # local days changed with the time zone: start again
        state = None
    if state is not None and (stale := _rebuild_stale(conn, site_id, tz, state[1], state[2])):
        return RefreshResult(site_id, state[1], stale)
    target = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=FINAL_AFTER_DAYS)
    if state is not None:
        first = state[1] + timedelta(days=1)
    else:
        oldest = conn.execute(text("SELECT min(timestamp) FROM events WHERE site_id = :site"),
                              {"site": site_id}).scalar()
        if oldest is None:
            return RefreshResult(site_id, None, 0)
        first = oldest.astimezone(ZoneInfo(tz)).date()
    if first > target:
        if state is None or state[2] == first or not _visits_ended(conn, site_id, first, tz, now, visit_timeout):
            return RefreshResult(site_id, state[1] if state else None, 0)
        _roll(conn, site_id, first, first, tz)
        conn.execute(text("UPDATE rollup_state SET provisional_day = :day, updated_at = now() WHERE site_id = :site"),
                     {"site": site_id, "day": first})
        return RefreshResult(site_id, state[1], 1)
    last = min(target, first + timedelta(days=CHUNK_DAYS - 1))
    params = _roll(conn, site_id, first, last, tz)
    conn.execute(text(
        "INSERT INTO rollup_state (site_id, timezone, rolled_until) VALUES (:site, :tz, :to_day) "
        "ON CONFLICT (site_id) DO UPDATE SET timezone = excluded.timezone, rolled_until = excluded.rolled_until, "
        "provisional_day = NULL, updated_at = now()"
    ), params)
    return RefreshResult(site_id, last, (last - first).days + 1)


WARMED = ("sessions_site_start", "sessions_pkey", "sessions_site_country")
"""What the queries after a roll-up read first: the visits' start index (a range's visits, index-only), the
visits by session (the events joined with their visits), then the visits by country (a country's visits under
a second visit filter, migration 0025), in that order of need."""
WARM_AFTER_DAYS = CHUNK_DAYS
"""A roll-up of more days than this (a rebuild, a catch-up after a migration emptied the rollups) warms
:data:`WARMED`; the routine run rolls up a day or two and leaves the cache alone."""


def vacuum(conn: Connection) -> None:
    """``VACUUM (ANALYZE)`` the rollup tables, on a connection in autocommit (VACUUM runs outside transactions).

    A rollup query reads them with index-only scans, which skip the table only for pages VACUUM has marked
    all-visible; after a roll-up of many days the new pages are unmarked (autovacuum comes after 10,000 rows,
    migration 0020, but throttled by its cost delay) and their statistics old. Without the connection's statement
    timeout: at 10 M events the VACUUM after a re-rolled day took over the 30 s default (docs/benchmarks.md)."""
    conn.execute(text("SET statement_timeout = 0"))
    try:
        conn.execute(text("VACUUM (ANALYZE) rollup_spans, rollup_days"))
    finally:
        conn.execute(text("RESET statement_timeout"))


def warm(conn: Connection) -> dict[str, int] | None:
    """Read the visits table's indexes (:data:`WARMED`) into PostgreSQL's shared buffers with ``pg_prewarm``.

    A roll-up of many days writes rollups of many times the visits table's size (about 1,700 bytes per event),
    which pushes the visits' indexes out of PostgreSQL's buffers and the OS page cache: at 10 M events the first
    entry pages query after it took 748 ms against 255 warm. From empty caches, warming them (764 MB, 2.4 s)
    took the pages of two visit filters over 30 days from 1,710 to 529 ms (docs/benchmarks.md). Returns the
    8 kB blocks read per index; an index
    that would fill more than half of ``shared_buffers`` together with those before it is skipped (0). None
    when the ``pg_prewarm`` extension is not in the database (the ``beacon_postgresql`` role and the
    development stack create it; it needs a superuser).
    """
    if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm'")).first() is None:
        return None
    budget = int(conn.execute(text(
        "SELECT setting::bigint * 8192 / 2 FROM pg_settings WHERE name = 'shared_buffers'")).scalar_one())
    blocks: dict[str, int] = {}
    for index in WARMED:
        size = conn.execute(text("SELECT pg_relation_size(to_regclass(:index))"), {"index": index}).scalar()
        if size is None or size > budget:
            blocks[index] = 0
            continue
        budget -= int(size)
        blocks[index] = int(conn.execute(text("SELECT pg_prewarm(to_regclass(:index))"), {"index": index}
                                         ).scalar_one())
    return blocks


STALE_REACH = timedelta(days=2)
"""How far from a late event's day the rollups may change: a visitor id lives for at most three local days, so
its spans begin at most two days before and end at most two days after any of its events."""


def forget(conn: Connection, site_id: int) -> None:
    """Drop the site's rollups, so that the next refreshes build them again from the first event."""
    for table in ("rollup_spans", "rollup_days", "rollup_state", "rollup_stale"):
        conn.execute(text(f"DELETE FROM {table} WHERE site_id = :site"), {"site": site_id})


def days_to_roll(conn: Connection, site_id: int, now: datetime) -> int:
    """About how many days the refreshes of the site have to roll up (for a progress bar)."""
    row = conn.execute(text(
        "SELECT s.timezone, r.rolled_until, (SELECT count(*) FROM rollup_stale WHERE site_id = s.id), "
        "(SELECT min(timestamp) FROM events WHERE site_id = s.id) FROM sites s "
        "LEFT JOIN rollup_state r ON r.site_id = s.id AND r.timezone = s.timezone WHERE s.id = :site"),
        {"site": site_id}).first()
    if row is None or row[3] is None:
        return 0
    tz, rolled, stale, oldest = str(row[0]), row[1], int(row[2]), row[3]
    first = rolled + timedelta(days=1) if rolled else oldest.astimezone(ZoneInfo(tz)).date()
    target = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=FINAL_AFTER_DAYS)
    return int(max(0, (target - first).days + 1) + 1 + stale * (2 * STALE_REACH.days + 1))


def _rebuild_stale(conn: Connection, site_id: int, tz: str, rolled_until: date, provisional: date | None) -> int:
    """Roll up again the days around the days late events arrived for (noted by the events trigger, see
    migration 0010); returns how many days were rolled up (0: none was stale)."""
    days = [row[0] for row in conn.execute(text(
        "DELETE FROM rollup_stale WHERE site_id = :site RETURNING day"), {"site": site_id})]
    if not days:
        return 0
    last_rolled = max(rolled_until, provisional or rolled_until)
    ranges: list[tuple[date, date]] = []
    for day in sorted(days):
        # Days before the first rolled-up one (an import of older data) simply get their spans now.
        first, last = day - STALE_REACH, min(last_rolled, day + STALE_REACH)
        if ranges and first <= ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((first, last))
    for first, last in ranges:
        _roll(conn, site_id, first, last, tz)
    return sum((last - first).days + 1 for first, last in ranges)


def _roll(conn: Connection, site_id: int, first: date, last: date, tz: str) -> dict[str, Any]:
    """Replace the spans beginning and the day counts on ``first``..``last``."""
    params = {"site": site_id, **window(first, last, tz)}
    # A week of a busy site is a long statement; this job is its only caller, so it may take its time.
    conn.execute(text("SET LOCAL statement_timeout = '15min'"))
    for setting in QUERY_SETTINGS:
        conn.execute(text(setting))
    # By dimension, and for spans by their last day (never before their first): the key's ranges, so a day's
    # re-roll reads the newest rows of each dimension, not every row of the site.
    stored = {"dimensions": [name for name, _, _ in _with_totals((*STORED, *PAIR_TOTALS))]}
    conn.execute(text("DELETE FROM rollup_spans WHERE site_id = :site AND dimension = ANY(:dimensions) "
                      "AND last_day >= :from_day AND first_day BETWEEN :from_day AND :to_day"), params | stored)
    conn.execute(text("DELETE FROM rollup_days WHERE site_id = :site AND dimension = ANY(:dimensions) "
                      "AND day BETWEEN :from_day AND :to_day"), params | stored)
    conn.execute(text(
        f"WITH {scan_ctes(props=True)}, "
        f"spans AS (INSERT INTO rollup_spans (site_id, dimension, value, first_day, last_day, visitors, visits, "
        "bounces, duration, pageviews) SELECT :site, dimension, value, first_day, last_day, sum(visitors), "
        "sum(visits), sum(bounces), sum(duration), sum(pageviews) "
        f"FROM ({spans_sql((*STORED, *PAIR_TOTALS))}) s GROUP BY dimension, value, first_day, last_day) "
        f"INSERT INTO rollup_days (site_id, dimension, value, day, pageviews, events) "
        f"SELECT :site, * FROM ({days_sql(DAYS_STORED)}) d"
    ), params)
    return params


def _visits_ended(conn: Connection, site_id: int, day: date, tz: str, now: datetime, timeout: timedelta) -> bool:
    """Whether ``day`` is over and every visit with events on it (or before) has had no event for ``timeout``:
    then nothing that the rollups store for the day can change any more."""
    day_end = _midnight(day + timedelta(days=1), tz)
    if now < day_end + timeout + timedelta(minutes=1):  # a minute for batches still being written
        return False
    open_visit = conn.execute(text(
        "SELECT 1 FROM events r WHERE r.site_id = :site AND r.timestamp >= :since AND EXISTS ("
        "SELECT 1 FROM events o WHERE o.site_id = :site AND o.session_id = r.session_id AND o.timestamp < :day_end "
        "AND o.timestamp >= :day_end - interval '2 days') LIMIT 1"
    ), {"site": site_id, "since": now - timeout, "day_end": day_end}).first()
    return open_visit is None


# --- answering ----------------------------------------------------------------------------------------


def _one_value(query: Query) -> tuple[str, str] | None:
    """``(dimension, value)`` when the query's one filter keeps exactly one value of a rolled-up dimension, in
    a form the rollups store it in (see :func:`only_value`)."""
    if len(query.filters) != 1:
        return None
    return _kept_value(query.filters[0])


def _kept_value(cond: object) -> tuple[str, str] | None:
    """``(dimension, value)`` when the filter ``cond`` keeps exactly one value of a rolled-up dimension, in a
    form the rollups store it in."""
    if not isinstance(cond, Condition):
        return None
    if cond.operator != "is" or len(cond.clauses) != 1 or not cond.case_sensitive:
        return None
    dimension, value = cond.dimension, cond.clauses[0]
    if dimension.startswith(PROPS_PREFIX):
        # (none): the events without the property, which no span holds.
        key = dimension.removeprefix(PROPS_PREFIX)
        stored = f"{len(key)}:{key}{value}"
        return None if value == NO_PROP or not key or len(stored.encode()) > PROPS_VALUE_BYTES else (PROPS, stored)
    if dimension not in (*VISIT_DIMENSIONS, *EVENT_DIMENSIONS) or value == "" or "*" in value:
        return None
    if dimension in VISIT_COLUMNS and value == VISIT_COLUMNS[dimension][1]:
        return None
    return dimension, value


def paired(query: Query) -> tuple[str, int, str] | None:
    """``(pair, part, value)`` when the query's one filter keeps one value of a visit dimension and its only other
    dimension besides time is rolled up in a pair with it (:data:`PAIRS`: ``visit:country is DE`` by
    ``visit:source`` or by ``visit:entry_page``): such a query is the pair's rollup restricted to the value in
    ``part`` (1 or 2), grouped by the other part.

    Exact for the reasons :func:`only_value` is: a pair's spans are those of (visitor, first value, second
    value), so the visitors (and visits) of a source among the visits from DE are the spans with both.
    """
    one = _one_value(query)
    others = [d for d in query.dimensions if d not in TIME_DIMENSIONS]
    if one is None or len(others) != 1 or (name := _pair_of(one[0], others[0])) is None:
        return None
    return name, 1 if name.startswith(f"{one[0]}|") else 2, one[1]


def _pair_of(first: str, second: str) -> str | None:
    """The stored name of the pair of two visit dimensions (:data:`PAIRS`), None when they are not rolled up
    together."""
    return next((p for p in PAIRS if set(p.split("|")) == {first, second} and first != second), None)


def _two_kept(query: Query) -> dict[str, str] | None:
    """``{dimension: value}`` when the query's two filters each keep one value of a different rolled-up dimension
    (see :func:`_kept_value`), else None."""
    if len(query.filters) != 2:
        return None
    kept = [_kept_value(cond) for cond in query.filters]
    values = dict(k for k in kept if k is not None)
    return values if len(values) == 2 else None


def both_paired(query: Query) -> Read | None:
    """The pair's rows that answer ``query`` when its two filters keep one value each of two dimensions rolled up
    as a pair (:data:`PAIRS`: ``visit:country is DE`` and ``visit:source is Google``) and it is grouped by time
    or by one of the two: the pair's rollup restricted to the pair of values, grouped by nothing or by that part.

    Exact for the reasons :func:`paired` is: a pair's spans are those of (visitor, first value, second value),
    so the visitors (and visits) with a visit of both values are the spans of the pair of values.
    """
    if (values := _two_kept(query)) is None:
        return None
    parts: tuple[str, ...]
    if set(values) == {"event:page", "visit:entry_page"} and "event:page" not in query.dimensions:
        # A page and an entry page: the page filter keeps every event on the page, as PAGE_EVENTS' pair counts.
        if not fits_pair(PAGE_EVENTS, values["event:page"], "visit:entry_page"):
            return None  # not paired with the entry page
        name, parts = PAGE_ENTRY, ("event:page", "visit:entry_page")
    elif (pair := _pair_of(*values)) is not None:
        name, parts = pair, tuple(pair.split("|"))
    else:
        return None
    others = [d for d in query.dimensions if d not in TIME_DIMENSIONS]
    if len(others) > 1 or (others and others[0] not in values):
        return None
    first, second = (values[d] for d in parts)
    group = parts.index(others[0]) + 1 if others else 0
    return Read(name, f"{len(first)}:{first}{second}", 0, group)


def only_value(query: Query) -> tuple[str, str] | None:
    """``(dimension, value)`` when the query's one filter keeps exactly one value of a rolled-up dimension that
    is also its only other dimension (or it has none besides time): such a query is that dimension's rollup
    restricted to the value.

    Exact because the rollups count spans per value: the visitors with a visit (or, for ``event:name``, an
    event) of that value are the filter's visitors, and so are its visits and their totals. Left out: several
    values (one visitor can have visits of two values, counted once by the filter and twice by two spans),
    empty values and empty labels (stored under the label, filtered as ''), case-insensitive matching, page
    wildcards, and ``event:page`` but grouped by page (the filter also keeps custom events on the page, the
    rollup pageviews only; grouped by page, the engine counts the page's pageviews only as well; the other page
    filters read :data:`PAGE_EVENTS`, see :func:`page_paired`).
    """
    if (one := _one_value(query)) is None:
        return None
    dimension, value = one
    if dimension == "event:page" and dimension not in query.dimensions:
        return None  # the filter keeps the page's custom events too; grouped by page, its pageviews only
    if any(d not in TIME_DIMENSIONS and d != dimension for d in query.dimensions):
        return None
    return dimension, value


def page_paired(query: Query) -> Read | None:
    """The rows of :data:`PAGE_EVENTS` or of a page or name pair that answer ``query``, when its one filter keeps
    one page and it is grouped by time or by one of :data:`PAGE_PAIRED` (``event:page is /`` by source), or its
    one filter keeps one value of :data:`PAGES_PAIRED` and it is grouped by page (``visit:country is DE`` by page),
    or its one filter keeps one custom event's name and it is grouped by one of :data:`NAME_PAIRED` (``event:name
    is Signup`` by source; a pageview's name is not stored in pairs), or its one filter keeps one value of a custom
    property (of at most :data:`PAIR_FIRST_BYTES`) and it is grouped by one of :data:`PROPS_PAIRED`
    (``event:props:plan is pro`` by entry page).

    Exact for the reasons :func:`only_value` is: the spans of a page filter are those of (visitor, page of any
    event, value) and, for visits, of (visit, page) over the days of the visit's events on the page, the days a
    filter on the page counts the visit in; grouped by page, the spans count pageviews only, as the engine's
    pages do. A name's and a property's pairs likewise: (visitor, name or property value, value) over the days of
    its events with that name or property value, and (visit, name or property value) over the days the visit has
    them.
    """
    if (one := _one_value(query)) is None:
        return None
    dimension, value = one
    others = [d for d in query.dimensions if d not in TIME_DIMENSIONS]
    if dimension == "event:page" and not others:
        return Read(PAGE_EVENTS, value)
    if dimension == "event:page" and len(others) == 1 and others[0] in PAGE_PAIRED \
            and fits_pair(PAGE_EVENTS, value, others[0]):
        return Read(f"{PAGE_EVENTS}|{others[0]}", value, 1)
    if dimension in PAGES_PAIRED and others == ["event:page"]:
        return Read(f"{dimension}|event:page", value, 1)
    if dimension == "event:name" and value != "pageview" and len(others) == 1 and others[0] in NAME_PAIRED:
        return Read(f"event:name|{others[0]}", value, 1)
    if dimension == PROPS and len(others) == 1 and others[0] in PROPS_PAIRED \
            and fits_pair(PROPS, value, others[0]):
        return Read(f"{PROPS}|{others[0]}", value, 1)
    return None


@dataclass(frozen=True)
class Read:
    """The stored rows that answer a query: ``dimension``'s, and with a ``value`` only those whose value (its
    ``part`` of a pair's value: 1 or 2, the other part being the group; 0: the whole value) is ``value``."""

    dimension: str
    value: str | None = None
    part: int = 0
    group: int = 0
    """With ``part`` 0 and a pair's whole ``value`` (two filters, see :func:`both_paired`): the part (1 or 2)
    the rows are grouped by; 0: the value itself."""


def reads(query: Query) -> Read | None:
    """The rows that answer ``query`` if the rollups hold it (see :func:`only_value`, :func:`paired`,
    :func:`page_paired`, :func:`both_paired`, :func:`two_paired_by`, :func:`pair_total`); None when its filters or
    dimensions are not rolled up."""
    others = [d for d in query.dimensions if d not in TIME_DIMENSIONS]
    if not query.filters:
        return None if len(others) > 1 else Read(others[0] if others else "")
    if (only := only_value(query)) is not None:
        return Read(only[0], only[1])
    if (pair := paired(query)) is not None:
        return Read(pair[0], pair[2], pair[1])
    return page_paired(query) or both_paired(query) or two_paired_by(query) or pair_total(query)


def two_paired_by(query: Query) -> Read | None:
    """The rows of a pair's pages (:data:`PAGES_TWO_PAIRED`) or of its visit dimensions (:data:`TWO_VISIT_PAIRS`)
    that answer ``query`` when its two filters keep one value each of the pair's two visit dimensions
    (``visit:country is DE`` and ``visit:source is Google``) and it is grouped by page, entry page, device or browser
    (and time): the rows whose first part is the pair of values, grouped by the third.

    Exact for the reasons :func:`page_paired` and :func:`paired` are: the spans are those of (visitor, pair of
    values, page) over the days of the visitor's pageviews on the page in visits with both values, and the day
    counts those pageviews; or of (visitor, pair of values, visit value) and (visit, pair of values, visit value)
    over the days of the visits with all three.
    """
    others = [d for d in query.dimensions if d not in TIME_DIMENSIONS]
    if len(others) != 1 or (values := _two_kept(query)) is None or (pair := _pair_of(*values)) not in PAGES_TWO_PAIRED \
            or (name := f"{pair}|{others[0]}") not in STORED:
        return None
    first, second = (values[d] for d in pair.split("|"))
    return Read(name, f"{len(first)}:{first}{second}", 1)


def pair_total(query: Query) -> Read | None:
    """The total of a pair grouped by country (:data:`PAIR_TOTALS`) that answers ``query`` when it has no
    dimension but time and two filters: one value of the pair's first part (``visit:source is Google``, a page,
    a custom event's name) and a country (``visit:country is_not ''``): the visitors with that value and a
    country, the divisor of a filtered countries report's percentage.

    Exact for the reasons :func:`only_value` is: the total's spans are those of (visitor, value) over the days
    of the visitor's events with that value and a country."""
    if len(query.filters) != 2 or any(d not in TIME_DIMENSIONS for d in query.dimensions):
        return None
    country = Condition("is_not", "visit:country", ("",))
    rest = [f for f in query.filters if f != country]
    if len(rest) != 1 or (kept := _kept_value(rest[0])) is None:
        return None
    first = PAGE_EVENTS if kept[0] == "event:page" else kept[0]
    if not fits_pair(first, kept[1], "visit:country"):
        return None  # not paired
    name = f"{first}|visit:country#any"
    return Read(name, kept[1]) if name in PAIR_TOTALS and not (first == "event:name" and kept[1] == "pageview") \
        else None


def applicable(query: Query) -> bool:
    """Whether the rollups can answer ``query`` (the engine over raw events answers everything else)."""
    read = reads(query)
    if read is None or (read.dimension not in STORED and read.dimension not in PAIR_TOTALS):
        return False
    if query.filters and "percentage" in query.metrics:
        return False  # the rollups' percentage divides by all visitors, not the filtered ones
    if "bounce_rate" in query.metrics and bounce_entry_filter(query) is not None and not bounce_read(read):
        return False  # under a page filter, the bounces of the visits entering on the page only
    if time_bucket(query) == "hour":
        return False
    if not set(query.metrics) <= (VISIT_METRICS if _visit_spans(read.dimension) else EVENT_METRICS):
        return False
    if (read.dimension in DAYS_LEFT_OUT or read.dimension in PAIR_TOTALS) and _asks_day_counts(query):
        return False  # no day counts stored
    dr = query.date_range
    # Whole local days only ("today so far" and rolling 24 hours go to the raw engine).
    return dr.start == _midnight(dr.first_day, dr.timezone) and dr.end == _midnight(
        dr.last_day + timedelta(days=1), dr.timezone)


def _asks_day_counts(query: Query) -> bool:
    """Whether ``query`` asks pageviews or events, which only the day counts hold (the spans give the rest)."""
    return bool({"pageviews", "events"} & set(query.metrics))


def bounce_read(read: Read) -> bool:
    """Whether ``read``'s visits all entered on the page their page filter keeps: the rows of :data:`PAGE_ENTRY`
    with the same page in both parts (``event:page is /`` and ``visit:entry_page is /``), so that its bounce rate
    is Plausible's under that page filter (see ``engine.bounce_entry_filter``)."""
    if read.dimension != PAGE_ENTRY or read.part or read.value is None:
        return False
    length, _, rest = read.value.partition(":")
    return rest[:int(length)] == rest[int(length):]


def _kept(column: str, read: Read, sql: _Sql) -> str:
    """The condition keeping ``read``'s value of a stored ``column`` (``sp.value``), as the values' index
    (migration 0016: ``(site_id, dimension, value COLLATE "C")``) finds it: a pair's first part is a prefix of
    the value (its length, ':', itself), looked up as a range."""
    if read.part == 0:
        return f' AND {column} COLLATE "C" = :only'
    kept = f" AND {_part(column, read.part)} = :only"
    if read.part == 1 and read.value is not None:
        low = f"{len(read.value)}:{read.value}"
        last = ord(low[-1]) + 1
        if last <= 0x10FFFF:
            sql.params |= {"low": low, "high": low[:-1] + chr(0xE000 if 0xD800 <= last < 0xE000 else last)}
            kept += f' AND {column} COLLATE "C" >= :low AND {column} COLLATE "C" < :high'
    return kept


def _tail_filtered(read: Read) -> list[tuple[str, str]]:
    """``(dimension, value)`` of each value ``read`` keeps (none without a value), a page as ``event:page``."""
    if read.value is None:
        return []
    parts = _pair(read.dimension.removesuffix("#any")) or (read.dimension,)
    if read.part:
        filtered = _split(parts[read.part - 1], read.value)
    elif read.dimension in PAIR_TOTALS:
        filtered = [(parts[0], read.value)]
    else:
        filtered = _split(read.dimension, read.value)
    return sorted(("event:page" if d == PAGE_EVENTS else d, v) for d, v in filtered)


def _split(dimension: str, value: str) -> list[tuple[str, str]]:
    """``(dimension, value)`` of each part of a stored ``value`` of ``dimension`` (a pair's, nested ones too)."""
    if (pair := _pair(dimension)) is None:
        return [(dimension, value)]
    length, _, rest = value.partition(":")
    return [*_split(pair[0], rest[:int(length)]), *_split(pair[1], rest[int(length):])]


def _tail_kept(read: Read, sql: _Sql) -> tuple[str, str]:
    """Conditions on the tail's events and visits that keep only what ``read``'s filtered value(s) count: the
    page's events, the visits with the value. Without them the tail computes every value's spans and the
    query keeps one (a filtered percentage's divisor keeps the same ones, see :func:`percentage_read`)."""
    events = visits = ""
    for dimension, value in _tail_filtered(read):
        if dimension == "event:page":
            events += f" AND e.pathname = {sql.bind(value)}"
        elif dimension == "event:name":
            events += f" AND e.name = {sql.bind(value)}"
        elif dimension == PROPS:
            length, _, rest = value.partition(":")
            key = rest[:int(length)]
            # With the partial GIN index's own condition, so that it can find the few events (migration 0019).
            events += (" AND e.props <> '{}'::jsonb AND e.props @> "
                       f"CAST({sql.bind(json.dumps({key: rest[int(length):]}))} AS jsonb)")
        elif dimension in VISIT_COLUMNS and value != VISIT_COLUMNS[dimension][1]:
            visits += f" AND {TABLE_EXPRESSIONS[VISIT_COLUMNS[dimension][0]]} = {sql.bind(value)}"
    return events, visits


def _buckets(query: Query) -> list[tuple[date, date, date]]:
    """(bucket start for the label, first day, last day) of every time bucket, clipped to the range."""
    first, last = query.date_range.first_day, query.date_range.last_day
    bucket = time_bucket(query)
    if bucket is None:
        return [(first, first, last)]
    result = []
    day = first
    while day <= last:
        if bucket == "day":
            start, end = day, day
        elif bucket == "week":
            start = day - timedelta(days=day.weekday())
            end = start + timedelta(days=6)
        else:
            start = day.replace(day=1)
            end = date(start.year + start.month // 12, start.month % 12 + 1, 1) - timedelta(days=1)
        result.append((start, max(start, first), min(end, last)))
        day = min(end, last) + timedelta(days=1)
    return result


def percentage_read(query: Query, divisor: Query) -> Read | None:
    """The stored rows of ``divisor``'s visitors when the rollups answer ``query`` (a filtered report with
    ``percentage``, see ``planner.percentage_apart``) with its percentage in one statement: ``query`` without the
    percentage and ``divisor`` are both rolled up, and the divisor keeps the same events and visits in the days
    since the rollups end as ``query`` (one value of the same filter), so both read one computation of those days.
    None otherwise."""
    inner = dataclasses.replace(query, metrics=tuple(m for m in query.metrics if m != "percentage"))
    if not applicable(inner) or not applicable(divisor) or divisor.dimensions or divisor.date_range != query.date_range:
        return None
    read, total = reads(inner), reads(divisor)
    if read is None or total is None or read.value is None or total.value is None or total.part or total.group:
        return None
    return total if _tail_filtered(read) == _tail_filtered(total) else None


def _tail(query: Query, read: Read, needed: tuple[str, ...], sql: _Sql, percentage: bool, shared: bool
          ) -> tuple[list[str], str, str]:
    """``(CTEs, spans, day counts)`` of the days since the rollups end (from :window params in ``sql``): the
    spans of ``needed`` dimensions (their totals too with ``percentage``) and ``read``'s day counts when the
    query asks pageviews or events, each as a ``UNION ALL`` branch to the stored rows. ``shared``: the spans
    are also the divisor's (:func:`_divisor_spans`), so they are computed once into the CTE ``tail``."""
    dimension = read.dimension
    # Visit attributes cost a window over every visit: compute only those the spans need.
    parts = list(dict.fromkeys(d for name in needed for d in _flat(name) if d in VISIT_COLUMNS))
    # The visits table, not a window over the events: the tail's visits come from an index scan.
    # Visit dimensions (and the site's total) from the visits alone; pages need their events.
    events = any(_visit_spans(d.removesuffix("#any")) != "visit" for d in needed)
    # The site's totals too: its visitors from a day's visits, not from the three times as many events
    # (the unfiltered time series of a month: 85,236 events read and hashed per visitor, 230 of 290 ms).
    visit_spans = bool(set(query.metrics) & (VISIT_METRICS - EVENT_METRICS))
    with_visits = bool(parts) or not events or visit_spans
    columns = [VISIT_COLUMNS[d][0] for d in parts]
    kept_events, kept_visits = _tail_kept(read, sql)
    props = any(_flat(d)[0] == PROPS for d in needed)
    # A filter keeping a few events (a custom event's name, a property): the visits of those events only, found
    # among the day's visits, when no visit dimension reads the others. Not for a page, whose events are in a
    # third of the visits: the same or slower (docs/benchmarks.md, run 15).
    few = kept_events and all(_visit_spans(d) == "page" and not d.startswith(PAGE_EVENTS) for d in needed)
    ctes = [(table_scan_ctes(columns, events, kept_events, kept_visits, props, bool(few)) if with_visits
             else scan_ctes(None, kept_events, props)).strip()]
    # Only what the metrics read: visit spans for visits and their rates, day counts for pageviews and
    # events (the dashboard's reports ask visitors and percentage: the month's sources at 10 M events took
    # 291 ms, 154 without them, docs/benchmarks.md). A value with visits or day counts in the tail has
    # visitors there too, so no row is lost.
    spans = "SELECT dimension, CAST(value AS text) AS value, first_day, last_day, visitors, visits, bounces, " \
            f"duration, pageviews FROM ({spans_sql(needed, visit_spans, percentage, with_visits)}) t"
    if shared:
        ctes.append(f"tail AS MATERIALIZED ({spans})")
        spans = "SELECT * FROM tail WHERE dimension = :dim"
    days = ""
    if dimension in DAYS_STORED and _asks_day_counts(query):
        days = " UNION ALL SELECT dimension, CAST(value AS text), day, pageviews, events " \
               f"FROM ({days_sql((dimension,) if shared else needed, with_visits)}) t"
    return ctes, f" UNION ALL {spans}", days


def _divisor_spans(divisor: Read, sql: _Sql, with_tail: bool) -> str:
    """The CTE ``total_spans``: the visitor spans of ``divisor``'s value (its first and last day, visitors),
    stored (read through the values' index) and, ``with_tail``, from the CTE ``tail`` (see :func:`_tail`)."""
    sql.params["total_only"] = divisor.value
    tail = (" UNION ALL SELECT visitors, first_day, last_day FROM tail WHERE dimension = :total_dim "
            "AND value = :total_only") if with_tail else ""
    return ("total_spans AS (SELECT visitors, first_day, last_day FROM rollup_spans WHERE site_id = :site "
            "AND dimension = :total_dim AND value COLLATE \"C\" = :total_only "
            f"AND first_day < :boundary AND first_day <= :range_last AND last_day >= :range_first{tail})")


def build(query: Query, site_id: int, rolled_until: date, provisional_day: date | None = None,
          divisor: Read | None = None) -> tuple[str, dict[str, Any]]:
    """The statement answering ``query`` from the rollups (and the days since they end), with its parameters;
    ``divisor``: with a filtered ``percentage``, the rows of its divisor's visitors (see :func:`percentage_read`).
    """
    read = reads(query)
    assert read is not None, "rollups.build needs a query rollups.applicable accepts"
    dimension = read.dimension
    if divisor is not None:
        total = divisor.dimension
    else:
        total = _any(dimension) if any(name == _any(dimension) for name, _, _ in _with_totals((dimension,))) else ""
    dr = query.date_range
    # The provisional day's spans may end later, which no bucket of a query ending on it sees.
    rolled = State(rolled_until, provisional_day).rolled_for(query)
    boundary = min(rolled + timedelta(days=1), dr.last_day + timedelta(days=1))
    sql = _Sql({"site": site_id, "dim": dimension, "total_dim": total, "range_first": dr.first_day,
                "range_last": dr.last_day, "boundary": boundary})
    # A filter keeping one value: that value's rows only (of a pair: the filtered part, grouped by the other).
    only_sp = only_dd = ""
    sp_value, dd_value = "sp.value", "dd.value"
    if read.value is not None:
        sql.params["only"] = read.value
        only_sp, only_dd = _kept("sp.value", read, sql), _kept("dd.value", read, sql)
    if read.part or read.group:
        shown = 3 - read.part if read.part else read.group
        sp_value, dd_value = (_part(v, shown) for v in ("sp.value", "dd.value"))
    buckets = _buckets(query)
    sql.params |= {"labels": [b[0] for b in buckets], "starts": [b[1] for b in buckets],
                   "ends": [b[2] for b in buckets]}
    # The tail computes the dimension's spans, and the percentage's total only when it is asked for.
    percentage = "percentage" in query.metrics
    needed: tuple[str, ...]
    if divisor is not None:
        needed, percentage = tuple(dict.fromkeys((dimension, total))), False  # the divisor's rows: the total
    else:
        needed = tuple(dict.fromkeys([dimension, *([""] if percentage and not total else [])]))
    ctes: list[str] = []
    tail_spans = tail_days = ""
    if boundary <= dr.last_day:
        sql.params |= window(boundary, dr.last_day, dr.timezone)
        ctes, tail_spans, tail_days = _tail(query, read, needed, sql, percentage, divisor is not None)
    # The values as text on both sides of a UNION ALL: PostgreSQL pushes a condition on a column down into the
    # branches (so into the values' index) only when the branches' types are the union's.
    # One first part of a pair: its spans and day counts through the pairs' indexes (rollup_spans_first,
    # rollup_days_first). A filtered read has no percentage here, so it needs no total's rows.
    pair_rows = f" AND {PAIR_ROWS}" if read.part == 1 else ""
    stored_dims = f"dimension = :dim{pair_rows}" if pair_rows else "dimension IN (:dim, :total_dim)"
    percentage_total = ("SELECT sum(visitors) FROM all_spans WHERE dimension = :total_dim "
                        "AND first_day <= :range_last AND last_day >= :range_first")
    if divisor is not None:
        stored_dims = f"dimension = :dim{pair_rows}"
        ctes.append(_divisor_spans(divisor, sql, with_tail=boundary <= dr.last_day))
        percentage_total = ("SELECT sum(visitors) FROM total_spans WHERE first_day <= :range_last "
                            "AND last_day >= :range_first")
    ctes += [
        "all_spans AS (SELECT dimension, CAST(value AS text) AS value, first_day, last_day, visitors, visits, "
        "bounces, duration, pageviews "
        f"FROM rollup_spans WHERE site_id = :site AND {stored_dims} AND first_day < :boundary "
        f"AND first_day <= :range_last AND last_day >= :range_first{tail_spans})",
        # Day counts only for pageviews and events: every value with a day count in a bucket has a visitor span
        # there too, so no row is lost without them (the visit reports' 12 months read 190,353 day rows for nothing
        # at 10 M events, a third of the statement's pages; docs/benchmarks.md, run 29).
        "all_days AS (SELECT dimension, CAST(value AS text) AS value, day, pageviews, events FROM rollup_days "
        f"WHERE site_id = :site{'' if _asks_day_counts(query) else ' AND FALSE'} "
        f"AND dimension = :dim{pair_rows} AND day < :boundary AND day BETWEEN :range_first AND :range_last{tail_days})",
        "buckets AS (SELECT * FROM unnest(CAST(:labels AS date[]), CAST(:starts AS date[]), CAST(:ends AS date[])) "
        "AS b(label, start_day, end_day))",
        f"s AS (SELECT b.label, {sp_value} AS value, sum(sp.visitors) AS visitors, sum(sp.visits) AS visits, "
        "sum(sp.bounces) AS bounces, sum(sp.duration) AS duration, sum(sp.pageviews) AS visit_pageviews "
        "FROM buckets b JOIN all_spans sp ON sp.dimension = :dim AND sp.first_day <= b.end_day "
        f"AND sp.last_day >= b.start_day{only_sp} GROUP BY 1, 2)",
        f"d AS (SELECT b.label, {dd_value} AS value, sum(dd.pageviews) AS pageviews, sum(dd.events) AS events "
        "FROM buckets b JOIN all_days dd ON dd.dimension = :dim AND dd.day BETWEEN b.start_day AND b.end_day"
        f"{only_dd} GROUP BY 1, 2)",
    ]
    time_label, value = "coalesce(s.label, d.label)::timestamp", "coalesce(s.value, d.value)"
    select = [f"{time_label if name in TIME_DIMENSIONS else value} AS d{i}" for i, name in enumerate(query.dimensions)]
    ctes.append(
        f"agg AS (SELECT {', '.join([*select, ''])}coalesce(s.visitors, 0) AS visitors, "
        "coalesce(s.visits, 0) AS visits, coalesce(d.pageviews, 0) AS pageviews, coalesce(d.events, 0) AS events, "
        "s.bounces, s.duration, s.visit_pageviews "
        "FROM s FULL JOIN d ON s.label = d.label AND s.value = d.value)"
    )
    metric_sql = {
        "visitors": "agg.visitors", "visits": "agg.visits", "pageviews": "agg.pageviews", "events": "agg.events",
        "bounce_rate": "coalesce(round(100.0 * agg.bounces / nullif(agg.visits, 0)), 0)",
        "visit_duration": "coalesce(round(agg.duration / nullif(agg.visits, 0)), 0)",
        "views_per_visit": "coalesce(round(agg.visit_pageviews::numeric / nullif(agg.visits, 0), 2), 0)",
        "percentage": f"round(100.0 * agg.visitors / nullif(({percentage_total}), 0), 1)",
    }
    return finish(query, sql, ctes, metric_sql), sql.params


@dataclass(frozen=True)
class State:
    rolled_until: date
    """The last final day."""
    provisional_day: date | None
    """The day after it when rolled up provisionally."""

    def rolled_for(self, query: Query) -> date:
        """The last day the rollups answer ``query`` for: the provisional day too when no bucket of the query
        begins on a later day its spans may still reach.

        A provisional span that began on the provisional day may still end later (a visitor id lives for up to
        :data:`STALE_REACH` more days: up to the day after next while the final roll-up has not run yet);
        stored, it ends where the events known at the roll-up did. It intersects every bucket holding the
        provisional day either way, so only a bucket beginning on one of those later days (the range's first, or
        a day's, week's or month's boundary) could miss it. A query ending on the provisional day has none;
        neither has ``month`` (one bucket from the 1st to today) unless today is the 1st."""
        provisional = self.provisional_day
        if provisional != self.rolled_until + timedelta(days=1) or provisional < query.date_range.first_day:
            return self.rolled_until
        later = {provisional + timedelta(days=n) for n in range(1, STALE_REACH.days + 1)}
        if query.date_range.last_day <= provisional or all(start not in later for _, start, _ in _buckets(query)):
            return provisional
        return self.rolled_until


async def rolled_until(session: AsyncSession, site_id: int, tz: str) -> State | None:
    row = (await session.execute(text(
        "SELECT timezone, rolled_until, provisional_day FROM rollup_state WHERE site_id = :site"),
        {"site": site_id})).first()
    if row is None or row[0] != tz:
        return None
    return State(row[1], row[2])


TAIL_SETTING = "enable_sort"
"""Off for a statement that computes the days since the rollups end (:func:`_tail`), which groups those days'
events by visitor and value. They come from materialised CTEs, which have no statistics: PostgreSQL estimates a
condition on one at 0.5 % of its rows (311 of the 59,858 pageviews of the current month's last two days at 10 M
events) and sorts them to group them, where hashing is cheaper. Measured with ``EXPLAIN ANALYZE`` on that month:
the pages report 428 to 273-306 ms, the entry pages of a goal 282 to 230, pages under a source 515 to 455, the
other reports alike (docs/benchmarks.md, run 16). Sorts the statement cannot do without (its order, a window)
still run.

Off too for a statement reading one first part of a pair (``Read.part == 1``) through ``rollup_spans_first``
(:data:`PAIR_ROWS`): PostgreSQL keeps no statistics for the expression of a partial index and estimated the
237,332 spans of ``/`` with the entry pages over 12 months at 17 rows, which it sorted to group. ``EXPLAIN
ANALYZE`` over 12 months at 10 M events: entry pages under a page 288 to 178 ms, under a source 347 to 209, pages
under a country 391 to 205 (docs/benchmarks.md, run 20)."""


async def run(session: AsyncSession, query: Query, site_id: int, state: State, divisor: Read | None = None
              ) -> Result:
    """The answer to ``query`` from the rollups (see :func:`build`)."""
    statement, params = build(query, site_id, state.rolled_until, state.provisional_day, divisor)
    await prepare(session)
    read = reads(query)
    hashed = "scan_start" in params or (read is not None and read.part == 1)
    if hashed:
        await session.execute(text(f"SET LOCAL {TAIL_SETTING} = off"))
    rows = (await session.execute(text(statement), params)).all()
    if hashed:
        await session.execute(text(f"SET LOCAL {TAIL_SETTING} TO DEFAULT"))
    return rows_to_result(query, rows)


LAG_SQL = """
SELECT count(*), COALESCE(max(EXTRACT(EPOCH FROM now() - due)), 0) FROM (
  SELECT ((first_open + CAST(:final AS int))::timestamp AT TIME ZONE timezone) AS due FROM (
    SELECT s.timezone, COALESCE(r.rolled_until + 1, (SELECT (min(e.timestamp) AT TIME ZONE s.timezone)::date
                                                      FROM events e WHERE e.site_id = s.id)) AS first_open
    FROM sites s LEFT JOIN rollup_state r ON r.site_id = s.id AND r.timezone = s.timezone
  ) days WHERE first_open IS NOT NULL
) due WHERE due < now()
"""


async def lag(session: AsyncSession) -> tuple[int, float]:
    """``(sites behind, worst lag in seconds)`` over every site.

    A site is behind when a local day became final (:data:`FINAL_AFTER_DAYS` after it) and is not rolled up
    yet; its lag is the time since the first such day became final. A site without events is never behind.
    """
    row = (await session.execute(text(LAG_SQL), {"final": FINAL_AFTER_DAYS})).one()
    return int(row[0]), float(row[1])
