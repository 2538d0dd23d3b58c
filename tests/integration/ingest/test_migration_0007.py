"""Migration 0007: rows stored before it get the names, channels, sources, referrers and paths ingest stores now."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from app.devstack import Postgres, Redis
from tests.support.migrations import schema_at

OLD_EVENTS = [
    # pathname, referrer, referrer_source, channel, utm_source, utm_medium, browser, os, device
    ("/bl%C3%A5b%C3%A6r", "https://news.ycombinator.com/item?id=1", "newsletter-xyz", "referral",
     "newsletter-xyz", "", "Mobile Safari", "iOS", "mobile"),
    ("/#/caf%C3%A9", "https://www.google.com/search?q=x", "Google", "search", "", "", "Chrome", "Mac OS X",
     "desktop"),
    ("/a%20b", "http://localhost:3000/", "localhost", "referral", "", "", "Chrome Mobile", "Android", "mobile"),
    ("/%ff", "", "GOOGLE", "referral", "GOOGLE", "", "Mobile Safari", "iOS", "tablet"),
    ("/plain", "https://t.co/x", "Twitter", "paid", "", "cpc", "Facebook", "Linux", "other"),
]
NEW_EVENTS = [
    ("/blåbær", "news.ycombinator.com/item", "newsletter-xyz", "Email", "Safari", "iOS", "Mobile"),
    ("/#/café", "google.com/search", "Google", "Organic Search", "Chrome", "Mac", "Desktop"),
    ("/a b", "", "", "Direct", "Chrome", "Android", "Mobile"),
    ("/%ff", "", "Google", "Organic Search", "Safari", "iPadOS", "Tablet"),
    ("/plain", "t.co/x", "Twitter", "Paid Social", "Mobile App", "GNU/Linux", ""),
]


def test_old_rows_are_rewritten_and_rollups_emptied(postgres: Postgres, redis_server: Redis, tmp_path: Path) -> None:
    """Events and visits stored under 0006 read as ingest stores them now; rollups are left to be rebuilt."""
    with schema_at(postgres, redis_server, tmp_path, "beacon_mig0007", "0006") as (_, conn, config):
        site = conn.execute(text("INSERT INTO sites (domain) VALUES ('example.com') RETURNING id")).scalar()
        for i, (path, ref, source, channel, tag, medium, browser, os_, device) in enumerate(OLD_EVENTS):
            values = {"site": site, "i": i, "path": path, "ref": ref, "source": source, "channel": channel,
                      "tag": tag, "medium": medium, "browser": browser, "os": os_, "device": device}
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                "referrer, referrer_source, channel, utm_source, utm_medium, browser, browser_version, os, "
                "device) VALUES (:site, now(), 'pageview', :i, :i, 'example.com', :path, :ref, :source, "
                ":channel, :tag, :medium, :browser, '470.0', :os, :device)"), values)
            conn.execute(text(
                "INSERT INTO sessions (site_id, session_id, visitor_id, started_at, ended_at, entry_page, "
                "exit_page, referrer, referrer_source, channel, utm_source, utm_medium, browser, os, device) "
                "VALUES (:site, :i, :i, now(), now(), :path, :path, :ref, :source, :channel, :tag, :medium, "
                ":browser, :os, :device)"), values)
        conn.execute(text("INSERT INTO rollup_days (site_id, dimension, value, day, pageviews, events) "
                          "VALUES (:site, 'visit:channel', 'search', current_date, 1, 1)"), {"site": site})
        conn.commit()
        command.upgrade(config, "0007")
        conn.commit()
        events = conn.execute(text(
            "SELECT pathname, referrer, referrer_source, channel, browser, os, device FROM events "
            "ORDER BY visitor_id")).all()
        sessions = conn.execute(text(
            "SELECT entry_page, referrer, referrer_source, channel, browser, os, device FROM sessions "
            "ORDER BY session_id")).all()
        versions = conn.execute(text("SELECT DISTINCT browser_version FROM events WHERE browser = 'Mobile App'"))
        rollups = conn.execute(text("SELECT count(*) FROM rollup_days")).scalar()
        assert (NEW_EVENTS, NEW_EVENTS, [("",)], 0) == ([tuple(r) for r in events], [tuple(r) for r in sessions],
                                                        [tuple(r) for r in versions], rollups)
        command.downgrade(config, "0006")
        conn.commit()
        old = conn.execute(text("SELECT channel, os, device FROM events ORDER BY visitor_id")).all()
        assert [("email", "iOS", "mobile"), ("search", "Mac OS X", "desktop"), ("direct", "Android", "mobile"),
                ("search", "iOS", "tablet"), ("paid", "Linux", "")] == [tuple(r) for r in old]
