"""Import throughput and memory: Plausible CSV exports (``imported_pages``, zipped) of two sizes imported by the
job in a child process, against a same-run baseline of PostgreSQL's own ``COPY ... CSV`` of the same file.
The child's peak RSS shows whether memory grows with the file (it must not: the import streams).

Run: ``make bench PYTEST_ARGS=tests/benchmarks/bench_imports.py`` (``BENCH_IMPORT_ROWS=<n>``, default 1 000 000;
the small file has a tenth of the rows).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from sqlalchemy import text

from app.core.db import make_engine
from app.core.settings import DEFAULT_PORTS, load_settings
from app.devstack import Postgres, Redis, free_port
from app.migrate import migrate
from tests.support.servers import make_environment

# VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child of this (large) pytest process would
# report the parent's peak.
PEAK = """
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
"""

CHILD_IMPORT = PEAK + """
import json, sys, time
from app.core.db import make_engine
from app.core.settings import load_settings
from services.integrations.imports import job
settings = load_settings(json.loads(sys.argv[1]))
engine = make_engine(settings.database)
started = time.perf_counter()
status = job.run_import(engine, settings.imports, int(sys.argv[2]))
print(json.dumps({"status": status, "seconds": time.perf_counter() - started,
                  "maxrss_kib": peak()}))
"""

CHILD_COPY = PEAK + """
import json, sys, time, zipfile
import psycopg
conninfo, path, site, imp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
started = time.perf_counter()
with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
    cur.execute("CREATE TEMP TABLE staged (date date, hostname text, page text, visits bigint, visitors bigint, "
                "pageviews bigint, total_scroll_depth bigint, total_scroll_depth_visits bigint)")
    with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as raw, \\
            cur.copy("COPY staged FROM STDIN (FORMAT csv, HEADER true)") as copy:
        while chunk := raw.read(1 << 20):
            copy.write(chunk)
    cur.execute("INSERT INTO imported_pages (site_id, import_id, date, hostname, page, visits, visitors, pageviews, "
                "total_scroll_depth, total_scroll_depth_visits) SELECT %s, %s, * FROM staged", (site, imp))
print(json.dumps({"seconds": time.perf_counter() - started, "maxrss_kib": peak()}))
"""


def write_export(path: Path, rows: int) -> int:
    """A zipped ``imported_pages`` export of ``rows`` rows over 365 days; returns its uncompressed size."""
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=400)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("imported_pages_20240101_20241231.csv", "w", force_zip64=True) as out:
        out.write(b"date,hostname,page,visits,visitors,pageviews,total_scroll_depth,total_scroll_depth_visits\n")
        for i in range(rows):
            out.write(f"{first + dt.timedelta(days=i % 365)},example.com,/articles/{i % 50_000}/comments,"
                      f"{1 + i % 7},{1 + i % 5},{1 + i % 13},0,0\n".encode())
    with zipfile.ZipFile(path) as archive:
        return archive.infolist()[0].file_size


def child(code: str, *args: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                            timeout=1800)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_throughput_and_memory(postgres: Postgres, redis_server: Redis, state_dir: Path) -> None:
    rows = int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))
    environment = make_environment(postgres, redis_server, state_dir / "bench-imports", "beacon_bench_imports",
                                   redis_db=7, ports={name: free_port() for name in DEFAULT_PORTS})
    settings = load_settings(environment)
    migrate(settings)
    engine = make_engine(settings.database)
    conninfo = settings.database.url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with engine.begin() as conn:
            site = conn.execute(text(
                "INSERT INTO sites (domain) VALUES ('bench-imports.example') "
                "ON CONFLICT (domain) DO UPDATE SET domain = excluded.domain RETURNING id")).scalar()
        print(f"\nimports: {rows:,} and {rows // 10:,} rows of imported_pages, zipped; batch "
              f"{settings.imports.batch_rows} rows")
        for count in (rows // 10, rows):
            path = state_dir / f"bench-imports-{count}.zip"
            size = write_export(path, count)
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE site_imports CASCADE"))
                baseline_import = conn.execute(text(
                    "INSERT INTO site_imports (site_id, source) VALUES (:s, 'plausible') RETURNING id"),
                    {"s": site}).scalar()
            baseline = child(CHILD_COPY, conninfo, str(path), str(site), str(baseline_import))
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE site_imports CASCADE"))
                import_id = conn.execute(text(
                    "INSERT INTO site_imports (site_id, source, upload_path, upload_name, upload_size) "
                    "VALUES (:s, 'plausible', :p, 'export.zip', :n) RETURNING id"),
                    {"s": site, "p": str(path), "n": path.stat().st_size}).scalar()
            measured = child(CHILD_IMPORT, json.dumps(environment), str(import_id))
            assert "completed" == measured["status"]
            with engine.connect() as conn:
                assert count == conn.execute(text("SELECT count(*) FROM imported_pages")).scalar()
            print(f"  {count:>10,} rows, {size / 1e6:6.1f} MB CSV: import job {count / measured['seconds']:>9,.0f} "
                  f"rows/s, peak RSS {measured['maxrss_kib'] / 1024:6.1f} MiB | baseline COPY csv "
                  f"{count / baseline['seconds']:>9,.0f} rows/s, peak RSS {baseline['maxrss_kib'] / 1024:6.1f} MiB")
    finally:
        engine.dispose()
