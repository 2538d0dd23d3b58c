"""Page paths stored before 0015 that would not fit its index or 0017's are cut as the ingest service now cuts them."""

from __future__ import annotations

import random
import string
from pathlib import Path

from alembic import command
from sqlalchemy import text

from app.devstack import Postgres, Redis
from services.ingest.logic import MAX_PATH_BYTES, cut_utf8
from tests.support.migrations import schema_at


def test_long_paths_are_cut_before_the_visits_index_holds_them(postgres: Postgres, redis_server: Redis,
                                                                tmp_path: Path) -> None:
    """At 0014 a visit of two pageviews with 1,990-character paths (random letters, and CJK characters of three
    bytes) is stored; the upgrade to the head cuts both paths and the visit's entry and exit page to 1,000 bytes,
    the prefix the ingest service keeps, instead of failing to build 0015's and 0017's indexes; a short path is
    untouched, and the visit can take another event."""
    rng = random.Random(17)
    long_ascii = "/" + "".join(rng.choices(string.ascii_letters, k=1990))
    long_cjk = "/" + "".join(chr(0x4E00 + rng.randrange(20_000)) for _ in range(1990))
    with schema_at(postgres, redis_server, tmp_path, "beacon_migpaths", "0014") as (_, conn, config):
        site = int(conn.execute(text("INSERT INTO sites (domain) VALUES ('paths.example') RETURNING id")).scalar_one())
        for seconds, (visitor, path) in enumerate([(1, long_ascii), (1, long_cjk), (2, "/short")]):
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                "VALUES (:site, now() + make_interval(secs => :s), 'pageview', :v, :v, 'paths.example', :path)"),
                {"site": site, "s": seconds, "v": visitor, "path": path})
        conn.commit()
        command.upgrade(config, "head")
        conn.commit()
        paths = conn.execute(text("SELECT pathname FROM events ORDER BY timestamp")).scalars().all()
        visits = conn.execute(text("SELECT entry_page, exit_page FROM sessions ORDER BY session_id")).all()
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
            "VALUES (:site, now() + interval '5 seconds', 'pageview', 1, 1, 'paths.example', '/again')"),
            {"site": site})
        conn.commit()
    cut = [cut_utf8(p, MAX_PATH_BYTES) for p in (long_ascii, long_cjk)]
    assert [*cut, "/short"] == paths
    assert [(cut[0], cut[1]), ("/short", "/short")] == [tuple(v) for v in visits]
