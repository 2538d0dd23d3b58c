"""A realistic analytics data set, loaded quickly with binary COPY.

Visits arrive with daily and weekly seasonality in the site's time zone; each has a source (search,
social, referral, newsletter campaigns with UTM tags, direct), a device with a matching browser and OS, a
country, a Zipf-distributed landing page and a geometric number of further pageviews; some convert to
goals (Signup with a plan property, Outbound Link: Click, Purchase with revenue). About 15 % of visits are
from a visitor already seen that day (the visitor id changes daily, as Beacon's salts do).

Usage: ``python -m tests.benchmarks.datagen --events 1000000 --days 365`` with BEACON_* variables set,
or :func:`generate` from a benchmark or test (they import it from here, never from ``tests.benchmarks``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from app.core.settings import get_settings

# The very COPY format the ingest service writes.
from services.ingest.writer import COLUMNS as EVENT_COLUMNS
from services.ingest.writer import TYPES as EVENT_TYPES

# (source, channel, referrer, utm_source, utm_medium, utm_campaign, weight)
SOURCES = [
    ("", "Direct", "", "", "", "", 38),
    ("Google", "Organic Search", "https://www.google.com/", "", "", "", 28),
    ("Bing", "Organic Search", "https://www.bing.com/", "", "", "", 3),
    ("DuckDuckGo", "Organic Search", "https://duckduckgo.com/", "", "", "", 2),
    ("Twitter", "Organic Social", "https://t.co/x1y2z3", "", "", "", 5),
    ("Facebook", "Organic Social", "https://www.facebook.com/", "", "", "", 4),
    ("Reddit", "Organic Social", "https://www.reddit.com/r/selfhosted/", "", "", "", 3),
    ("Hacker News", "Referral", "https://news.ycombinator.com/", "", "", "", 3),
    ("github.com", "Referral", "https://github.com/", "", "", "", 4),
    ("newsletter", "Email", "", "newsletter", "email", "spring-launch", 5),
    ("google", "Paid Search", "https://www.google.com/", "google", "cpc", "brand", 5),
]
# (device, browser, os, weight)
DEVICES = [
    ("Desktop", "Chrome", "Windows", 24), ("Desktop", "Chrome", "Mac", 10), ("Desktop", "Firefox", "Windows", 6),
    ("Desktop", "Safari", "Mac", 8), ("Desktop", "Edge", "Windows", 5), ("Desktop", "Firefox", "GNU/Linux", 3),
    ("Mobile", "Chrome", "Android", 18), ("Mobile", "Safari", "iOS", 17), ("Mobile", "Samsung Internet", "Android", 3),
    ("Tablet", "Safari", "iOS", 4), ("Tablet", "Chrome", "Android", 2),
]
COUNTRIES = [("US", 30), ("DE", 12), ("GB", 9), ("FR", 7), ("IN", 7), ("CA", 5), ("NL", 4), ("BR", 4), ("JP", 3),
             ("ES", 3), ("IT", 3), ("PL", 3), ("SE", 2), ("AU", 2), ("CH", 2), ("EE", 1), ("", 3)]
HOURLY = [0.3, 0.2, 0.15, 0.12, 0.12, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.3, 1.2, 1.3, 1.3, 1.25, 1.2, 1.1, 1.0,
          0.95, 0.9, 0.8, 0.6, 0.45]
WEEKLY = [1.1, 1.15, 1.15, 1.1, 1.0, 0.6, 0.55]  # Monday..Sunday


def _pages(count: int) -> list[str]:
    sections = ["blog", "docs", "features", "pricing", "about", "changelog", "guides", "integrations"]
    pages = ["/", "/pricing", "/features", "/docs", "/blog", "/signup", "/login", "/about"]
    n = 0
    while len(pages) < count:
        section = sections[n % len(sections)]
        pages.append(f"/{section}/{section[:3]}-{n:04d}")
        n += 1
    return pages


@dataclass
class Generated:
    events: int
    visits: int
    seconds: float


class _Picker:
    def __init__(self, rng: random.Random, items: list[tuple[object, ...]]) -> None:
        self.rng = rng
        self.items = items
        self.weights = [float(item[-1]) for item in items]  # type: ignore[arg-type]

    def __call__(self) -> tuple[object, ...]:
        return self.rng.choices(self.items, self.weights)[0]


def _visit_starts(rng: random.Random, first: date, days: int, tz: str, total_visits: int) -> Iterator[datetime]:
    """Visit start times with daily and weekly seasonality and a gentle growth trend, in order."""
    zone = ZoneInfo(tz)
    day_weights = [WEEKLY[(first + timedelta(days=d)).weekday()] * (0.7 + 0.6 * d / max(days - 1, 1))
                   for d in range(days)]
    scale = total_visits / sum(day_weights)
    for d in range(days):
        day = first + timedelta(days=d)
        n = int(day_weights[d] * scale + rng.random())
        hours = rng.choices(range(24), HOURLY, k=n)
        starts = sorted(
            datetime(day.year, day.month, day.day, h, tzinfo=zone) + timedelta(seconds=rng.random() * 3600)
            for h in hours
        )
        yield from (s.astimezone(UTC) for s in starts)


def generate(conninfo: str, site_id: int, domain: str, *, events: int, days: int, end: date,
             tz: str = "UTC", seed: int = 1) -> Generated:
    """Load about ``events`` events for ``site_id`` over ``days`` local days ending on ``end``."""
    rng = random.Random(seed)
    pages = _pages(600)
    page_weights = [1 / (rank + 1) ** 1.1 for rank in range(len(pages))]
    source, device, country = _Picker(rng, SOURCES), _Picker(rng, DEVICES), _Picker(rng, COUNTRIES)
    visits_wanted = max(1, int(events / 2.3))
    first = end - timedelta(days=days - 1)
    started = time.perf_counter()
    written = visits = 0
    today_visitors: list[int] = []
    current_day: date | None = None
    zone = ZoneInfo(tz)
    with psycopg.connect(conninfo, autocommit=False) as conn:
        _ensure_partitions(conn, first, end)
        copy_sql = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(list(EVENT_TYPES))
            for start in _visit_starts(rng, first, days, tz, visits_wanted):
                local_day = start.astimezone(zone).date()
                if local_day != current_day:
                    current_day, today_visitors = local_day, []
                if today_visitors and rng.random() < 0.15:
                    visitor = rng.choice(today_visitors)
                else:
                    visitor = rng.getrandbits(62) + 1
                    today_visitors.append(visitor)
                session_id = rng.getrandbits(62) + 1
                src, channel, referrer, utm_source, utm_medium, utm_campaign, _ = source()
                dev, browser, os_name, _ = device()
                ctry, _ = country()
                browser_version = f"{rng.randint(110, 131)}.0"
                os_version = {"Windows": "10", "Mac": "14.5", "iOS": "17.5", "Android": "14"}.get(str(os_name), "")
                n_pages = min(1 + int(math.log(1 - rng.random()) / math.log(0.55)), 25)
                ts = start
                path = rng.choices(pages, page_weights)[0]
                visit_rows = []
                for i in range(n_pages):
                    if i:
                        ts += timedelta(seconds=min(rng.expovariate(1 / 70), 1500))
                        path = rng.choices(pages, page_weights)[0]
                    visit_rows.append((ts, "pageview", path, True, None, None, {}))
                goal = rng.random()
                if goal < 0.03:
                    ts += timedelta(seconds=rng.randint(5, 120))
                    plan = rng.choice(["free", "pro", "business"])
                    visit_rows.append((ts, "Signup", "/signup", True, None, None, {"plan": plan}))
                elif goal < 0.045:
                    ts += timedelta(seconds=rng.randint(5, 120))
                    amount = Decimal(f"{rng.uniform(9, 299):.2f}")
                    visit_rows.append((ts, "Purchase", "/checkout", True, amount, "USD", {}))
                elif goal < 0.10:
                    ts += timedelta(seconds=rng.randint(1, 60))
                    visit_rows.append((ts, "Outbound Link: Click", path, False, None, None,
                                       {"url": "https://github.com/"}))
                for at, name, pathname, interactive, revenue, currency, props in visit_rows:
                    copy.write_row((site_id, at, name, visitor, session_id, domain, pathname, referrer, src,
                                    channel, utm_source, utm_medium, utm_campaign, "", "", browser,
                                    browser_version, os_name, os_version, dev, ctry, interactive, revenue,
                                    currency, Jsonb(props)))
                written += len(visit_rows)
                visits += 1
        # The trigger of migration 0010 has folded the events into their visits (sessions).
        conn.commit()
        with conn.cursor() as cur:
            conn.autocommit = True
            # As autovacuum would have by the time anyone queries: visibility and hint bits set, statistics.
            cur.execute("VACUUM (ANALYZE) events")
            cur.execute("VACUUM (ANALYZE) sessions")
    return Generated(written, visits, time.perf_counter() - started)


def _ensure_partitions(conn: psycopg.Connection[object], first: date, last: date) -> None:
    """Monthly partitions for the whole range (the scheduler only creates the coming months)."""
    month = date(first.year, first.month, 1)
    with conn.cursor() as cur:
        while month <= last:
            following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            name = f"events_{month:%Y_%m}"
            cur.execute("SELECT to_regclass(%s)", (name,))
            if cur.fetchone() == (None,):
                try:
                    with conn.transaction():
                        cur.execute(f"CREATE TABLE {name} PARTITION OF events FOR VALUES FROM "
                                    f"('{month.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')")
                except psycopg.errors.CheckViolation:
                    # The default partition already holds rows of that month (another writer's, e.g. an earlier
                    # test on the same database): the month stays in the default partition, as it does in ingest.
                    pass
            month = following


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.datagen")
    parser.add_argument("--domain", default="bench.example")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--timezone", default="Europe/Berlin")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    settings = get_settings()
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO sites (domain, timezone) VALUES (%s, %s) ON CONFLICT (domain) "
                           "DO UPDATE SET timezone = excluded.timezone RETURNING id",
                           (args.domain, args.timezone)).fetchone()
    assert row is not None
    result = generate(settings.database.libpq_url, int(row[0]), args.domain, events=args.events,
                      days=args.days, end=datetime.now(UTC).date(), tz=args.timezone, seed=args.seed)
    print(json.dumps({"events": result.events, "visits": result.visits, "seconds": round(result.seconds, 1),
                      "events_per_second": round(result.events / result.seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
