"""Ingest benchmark (on demand: ``make bench`` or ``python -m tests.benchmarks.bench_ingest``): prints figures.

In one run, through one Nginx, with ``wrk`` and the same realistic Events API bodies (bench_ingest.lua):
1. ``hello``: Nginx → Granian → Litestar answering "ok" (2 processes): the ceiling of our HTTP path;
2. ``ingest``: the real ingest service (2 processes, as Circus runs it): batched COPY, 202 after commit;
3. ``baseline``: one insert and commit per event (2 processes, same framework and driver);
4. ``hello-rsgi``: Nginx → Granian → a bare RSGI callable answering "ok", for context (no framework).
After each run the 202s are compared with the rows that reached PostgreSQL, and the CPU used by each part
(the measured server processes, Nginx, PostgreSQL, Redis, wrk, and the rest of the machine) is printed.

``BENCH_ENDPOINTS`` (comma-separated) measures a subset; ``BENCH_PROFILE=<dir>`` records a py-spy profile of
one server process per endpoint there. ``BENCH_BEFORE=<git revision>`` adds the endpoint ``ingest-before``:
the ingest service of that revision (its ``app``, ``services`` and ``workers`` exported with ``git archive``
and put first on ``PYTHONPATH``), measured in the same run, just before ``ingest``, against the same database.
``ingest-nokeepalive`` (only when named in ``BENCH_ENDPOINTS``) is the same ingest processes through an
upstream without ``keepalive``: a new connection from Nginx per event, as the multi-host inventory configures.
``BENCH_SQL=<statements>`` runs SQL on the benchmark's database after the migrations (e.g. dropping an index,
to measure what that index costs ingest: two runs, with and without).

``BENCH_STANDBY=async,sync`` (either or both) gives the benchmark's PostgreSQL a streaming standby on loopback
(``pg_basebackup -R`` into its own data directory, started after the other endpoints were measured and
stopped at the end) and measures ``ingest`` again with it, as ``ingest-async`` and then ``ingest-sync``; the
plain ``ingest`` run before it is the same-run figure without a standby. ``sync`` is what Patroni's
``synchronous_mode: true`` sets on the primary: ``synchronous_standby_names`` naming the standby (its
``application_name``) with ``synchronous_commit = on``, so every COMMIT waits for the standby's flush of its
WAL; ``async`` leaves ``synchronous_standby_names`` empty. For each, besides events/s and CPU (the standby's
processes as ``standby``), the WAL the primary wrote (``pg_wal_lsn_diff`` of ``pg_current_wal_lsn()`` before
and after the measured run) per committed event is printed.

Everything runs on this machine (PostgreSQL, Redis, Nginx, the apps and wrk share the cores), on free ports
on 127.0.0.1, in a temporary directory removed at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from app.core.db import make_engine
from app.core.settings import CODE_DIR, DEFAULT_PORTS, Settings, load_settings
from app.devstack import (
    Postgres,
    Redis,
    _chown,
    _run,
    beacon_environment,
    free_port,
    postgres_bindir,
    render,
    stop_processes,
    wait_for_port,
)
from app.migrate import migrate

HERE = Path(__file__).parent
DURATION = int(os.environ.get("BENCH_DURATION", "30"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "100"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))
ENDPOINTS = os.environ.get("BENCH_ENDPOINTS", "hello,ingest,baseline,hello-rsgi").split(",")
BEFORE = os.environ.get("BENCH_BEFORE", "")
"""A git revision whose ingest service is measured too, as ``ingest-before`` (CPU per event before/after)."""
if BEFORE and "ingest-before" not in ENDPOINTS:
    ENDPOINTS.insert(ENDPOINTS.index("ingest") if "ingest" in ENDPOINTS else len(ENDPOINTS), "ingest-before")
PROFILE_DIR = os.environ.get("BENCH_PROFILE", "")
EXTRA_SQL = os.environ.get("BENCH_SQL", "")
STANDBY = [mode for mode in os.environ.get("BENCH_STANDBY", "").split(",") if mode]
"""Standby modes measured after the endpoints (``async``, ``sync``), each as ``ingest-<mode>``."""
if set(STANDBY) - {"async", "sync"}:
    raise SystemExit(f"BENCH_STANDBY takes async and/or sync (comma-separated), not {','.join(STANDBY)}")
if STANDBY and "ingest" not in ENDPOINTS:
    ENDPOINTS.append("ingest")  # the same-run figure without a standby
STANDBY_NAME = "bench_standby"
"""The standby's ``cluster_name``, hence its walreceiver's ``application_name`` (what Patroni names a member)."""
"""A directory: py-spy records one process of each measured endpoint there (collapsed stacks, flamegraph's input)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

SITE_CONF = """
upstream bench_ingest {{ server 127.0.0.1:{ingest}; keepalive 64; }}
upstream bench_ingest_nokeepalive {{ server 127.0.0.1:{ingest}; }}
upstream bench_ingest_before {{ server 127.0.0.1:{ingest_before}; keepalive 64; }}
upstream bench_baseline {{ server 127.0.0.1:{baseline}; keepalive 64; }}
upstream bench_hello {{ server 127.0.0.1:{hello}; keepalive 64; }}
upstream bench_hello_rsgi {{ server 127.0.0.1:{hello_rsgi}; keepalive 64; }}
server {{
    listen 127.0.0.1:{port};
    access_log off;
    client_max_body_size 64k;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    # wrk sends a made-up client address per request (many visitors); production sets $remote_addr.
    proxy_set_header X-Forwarded-For $http_x_bench_client;
    location = /api/event {{ proxy_pass http://bench_ingest; }}
    location = /nokeepalive/api/event {{ proxy_pass http://bench_ingest_nokeepalive/api/event; }}
    location = /before/api/event {{ proxy_pass http://bench_ingest_before/api/event; }}
    location = /baseline/api/event {{ proxy_pass http://bench_baseline/api/event; }}
    location = /hello {{ proxy_pass http://bench_hello; }}
    location = /hello-rsgi {{ proxy_pass http://bench_hello_rsgi/hello; }}
}}
"""


@dataclass
class Result:
    name: str
    requests_per_s: float
    accepted: int
    other: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    rows: int | None
    cpu: dict[str, float]
    """CPU seconds per component during the measured run (``others``: the rest of the machine)."""
    transactions: int
    """Transactions that wrote the rows (batches)."""
    wal_bytes: int | None = None
    """WAL bytes the primary wrote during the measured run (``pg_wal_lsn_diff``)."""
    standby_behind: int | None = None
    """Bytes of WAL the standby had not replayed when the measured run ended (``pg_stat_replication``)."""


def start(args: list[str], env: dict[str, str], log: Path, count: int, port: int) -> list[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        processes = [subprocess.Popen(args, env=env, stdout=out, stderr=out) for _ in range(count)]
    wait_for_port(port, 30)
    time.sleep(1.0)  # every process bound (SO_REUSEPORT) before load arrives
    return processes


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    stop_processes(processes)


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system) used so far by the processes ``roots`` and all their descendants.

    A process's own times plus those of its children it has reaped (PostgreSQL's finished backends are
    counted in the postmaster's); live descendants are counted on their own.
    """
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]) / CLOCK_TICKS)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [pid for pid in roots if pid in stats]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total


def machine_busy() -> float:
    """CPU seconds all cores of the machine spent on anything but idling and waiting for I/O so far."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def wrk(port: int, path: str, duration: int) -> tuple[float, dict[str, int], float]:
    """Requests/s, the Lua script's counts, and wrk's own CPU seconds."""
    env = {**os.environ, "BENCH_PATH": path, "BENCH_DOMAIN": "bench.test"}
    process = subprocess.Popen(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "10s", "--latency",
         "-s", str(HERE / "bench_ingest.lua"), f"http://127.0.0.1:{port}{path}"],
        env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    with process.stdout:
        output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    return rate, {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}, usage.ru_utime + usage.ru_stime


def profile(pid: int, duration: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy on one server process for the measured run (native frames off: Python's view)."""
    return subprocess.Popen([str(Path(sys.prefix) / "bin" / "py-spy"), "record", "--pid", str(pid), "--duration",
                             str(duration), "--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def count_rows(settings: Settings) -> tuple[int, int]:
    """Rows in ``events`` and the transactions that wrote them (the mean batch is their ratio)."""
    engine = make_engine(settings.database)
    with engine.connect() as conn:
        rows, transactions = conn.execute(text("SELECT count(*), count(DISTINCT xmin::text) FROM events")).one()
    engine.dispose()
    return int(rows), int(transactions)


def wal_lsn(postgres: Postgres) -> str:
    """The primary's current WAL write position (``pg_current_wal_lsn()``, as text)."""
    return postgres.psql("SELECT pg_current_wal_lsn()").strip()


def wal_since(postgres: Postgres, lsn: str) -> int:
    """WAL bytes written since ``lsn`` (``pg_wal_lsn_diff``)."""
    if not re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", lsn):
        raise ValueError(f"not an LSN: {lsn!r}")
    return int(postgres.psql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn}')").strip())


def start_standby(primary: Postgres, standby: Postgres) -> int:
    """A streaming standby of ``primary`` in its own data directory (``pg_basebackup -R``), started and
    connected; returns its postmaster's PID."""
    standby._prepare()  # the same place and ownership as an initdb-made cluster
    _chown(standby.home, standby.user)
    _run([str(postgres_bindir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U",
          "postgres", "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast"],
         user=standby.user, env={**os.environ, "PGPASSWORD": primary.superuser_password}, what="pg_basebackup")
    with (standby.datadir / "postgresql.conf").open("a") as conf:
        conf.write(f"\n# Benchmark standby\nport = {standby.port}\ncluster_name = '{STANDBY_NAME}'\n")
    standby.start()
    for _ in range(100):
        if primary.psql(f"SELECT 1 FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}' "
                        "AND state = 'streaming'").strip():
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("the standby did not start streaming within 20 s")
    return int((standby.datadir / "postmaster.pid").read_text().split()[0])


def set_standby_mode(primary: Postgres, mode: str) -> None:
    """``sync``: COMMIT waits for the standby's flush (Patroni's ``synchronous_mode: true``); ``async``: not."""
    names = f'"{STANDBY_NAME}"' if mode == "sync" else ""
    primary.psql(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
    primary.psql("ALTER SYSTEM SET synchronous_commit = 'on'")
    primary.psql("SELECT pg_reload_conf()")
    expected = "sync" if mode == "sync" else "async"
    for _ in range(50):
        state = primary.psql(f"SELECT sync_state FROM pg_stat_replication "
                             f"WHERE application_name = '{STANDBY_NAME}'").strip()
        if state == expected:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the standby's sync_state is {state!r}, not {expected!r}")


def standby_behind(primary: Postgres) -> int | None:
    """Bytes of the primary's WAL the standby has not replayed yet (None without a standby)."""
    value = primary.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication "
                         f"WHERE application_name = '{STANDBY_NAME}'").strip()
    return int(value) if value else None


def run(duration: int = DURATION) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (make bench installs it)")
    root = Path(tempfile.mkdtemp(prefix="beacon-bench-"))
    root.chmod(0o755)
    postgres = Postgres(root / "postgres", free_port(), secrets.token_urlsafe(16))
    redis = Redis(root / "redis", free_port(), secrets.token_urlsafe(16))
    standby = Postgres(root / "standby", free_port(), postgres.superuser_password)
    nginx_proc: subprocess.Popen[bytes] | None = None
    groups: list[list[subprocess.Popen[bytes]]] = []
    results: list[Result] = []
    try:
        postgres.init()
        postgres.start()
        redis.start()
        postgres.ensure_database("beacon_bench", "beacon_bench", "bench-password")
        database_url = postgres.url("beacon_bench", "bench-password", "beacon_bench")
        ports = {name: free_port() for name in DEFAULT_PORTS}
        environment = beacon_environment(home=CODE_DIR, state=root / "state", database_url=database_url,
                                         redis_url=redis.url(0), secret_key=secrets.token_urlsafe(32),
                                         internal_token=secrets.token_urlsafe(24), base_url="http://localhost",
                                         ports=ports)
        environment.update({"BEACON_INGEST_RATE_PER_IP": "100000", "BEACON_INGEST_RATE_PER_SITE": "100000000",
                            "BEACON_LOG_LEVEL": "WARNING"})
        settings = load_settings(environment)
        migrate(settings)
        engine = make_engine(settings.database)
        if EXTRA_SQL:
            with engine.begin() as conn:
                conn.exec_driver_sql(EXTRA_SQL)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO sites (domain) VALUES ('bench.test')"))
        engine.dispose()
        env = {**os.environ, **environment}
        logs = root / "log"
        logs.mkdir()
        hello_port, baseline_port, hello_rsgi_port = free_port(), free_port(), free_port()
        beacon = str(Path(sys.prefix) / "bin" / "beacon")
        groups.append(start([beacon, "serve", "ingest"], env, logs / "ingest.log", PROCESSES, ports["ingest"]))
        before_port = free_port()
        if BEFORE:
            code = root / "before"
            code.mkdir()
            archive = subprocess.run(["git", "-C", str(CODE_DIR), "archive", BEFORE, "app", "services", "workers"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
            groups.append(start([sys.executable, "-c", "from app.cli import main; main()", "serve", "ingest"],
                                {**env, "PYTHONPATH": str(code), "BEACON_INGEST_PORT": str(before_port)},
                                logs / "ingest-before.log", PROCESSES, before_port))
        groups.append(start([sys.executable, "-m", "tests.benchmarks.bench_apps", "baseline"],
                            {**env, "BENCH_PORT": str(baseline_port)}, logs / "baseline.log", PROCESSES,
                            baseline_port))
        groups.append(start([sys.executable, "-m", "tests.benchmarks.bench_apps", "hello"],
                            {**env, "BENCH_PORT": str(hello_port)}, logs / "hello.log", PROCESSES, hello_port))
        groups.append(start([sys.executable, "-m", "tests.benchmarks.bench_apps", "hello-rsgi"],
                            {**env, "BENCH_PORT": str(hello_rsgi_port)}, logs / "hello-rsgi.log", PROCESSES,
                            hello_rsgi_port))
        nginx_port = free_port()
        nginx_dir = root / "nginx"
        site = nginx_dir / "bench.conf"
        nginx_dir.mkdir()
        site.write_text(SITE_CONF.format(ingest=ports["ingest"], ingest_before=before_port, baseline=baseline_port,
                                         hello=hello_port,
                                         hello_rsgi=hello_rsgi_port, port=nginx_port))
        main = render("dev-nginx.conf.j2", {"beacon_run_dir": nginx_dir, "beacon_log_dir": logs,
                                            "beacon_site_conf": site,
                                            "beacon_worker_user": "root" if os.geteuid() == 0 else None},
                      nginx_dir / "nginx.conf")
        nginx_proc = subprocess.Popen(["nginx", "-p", str(nginx_dir), "-c", str(main), "-g", "daemon off;"],
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(nginx_port, 20)
        servers = {"ingest": groups[0], "ingest-nokeepalive": groups[0],
                   **({"ingest-before": groups[1]} if BEFORE else {}), "baseline": groups[-3],
                   "hello": groups[-2], "hello-rsgi": groups[-1]}
        postmaster = int((postgres.datadir / "postmaster.pid").read_text().split()[0])
        assert redis.process is not None
        others = {"nginx": [nginx_proc.pid], "postgres": [postmaster], "redis": [redis.process.pid]}
        paths = {"hello": "/hello", "ingest-before": "/before/api/event", "ingest": "/api/event",
                 "baseline": "/baseline/api/event", "hello-rsgi": "/hello-rsgi",
                 "ingest-nokeepalive": "/nokeepalive/api/event"}
        steps = [(name, name, path) for name, path in paths.items() if name in ENDPOINTS and name in servers]
        steps += [(f"ingest-{mode}", "ingest", paths["ingest"]) for mode in STANDBY]
        for label, name, path in steps:
            if label != name:
                if "standby" not in others:
                    others["standby"] = [start_standby(postgres, standby)]
                set_standby_mode(postgres, label.removeprefix("ingest-"))
            wrk(nginx_port, path, 3)  # warm-up: connections, caches, JIT-free Python's first imports
            before = count_rows(settings)
            lsn = wal_lsn(postgres)
            pids = {"server": [p.pid for p in servers[name]], **others}
            cpu_before = {part: tree_cpu(roots) for part, roots in pids.items()}
            busy_before = machine_busy()
            profiler = (profile(servers[name][0].pid, duration, Path(PROFILE_DIR) / f"{name}.txt")
                        if PROFILE_DIR else None)
            rate, counts, wrk_cpu = wrk(nginx_port, path, duration)
            cpu = {part: tree_cpu(roots) - cpu_before[part] for part, roots in pids.items()}
            cpu["wrk"] = wrk_cpu
            cpu["others"] = max(machine_busy() - busy_before - sum(cpu.values()), 0.0)
            wal_bytes = wal_since(postgres, lsn)
            behind = standby_behind(postgres) if "standby" in others else None
            if profiler is not None:
                profiler.wait(60)
            time.sleep(0.5)
            after = count_rows(settings)
            rows = None if name.startswith("hello") else after[0] - before[0]
            results.append(Result(label, rate, counts["accepted"], counts["other"], counts["errors"],
                                  counts["p50_us"] / 1000, counts["p90_us"] / 1000, counts["p99_us"] / 1000, rows,
                                  cpu, after[1] - before[1], wal_bytes, behind))
    finally:
        if nginx_proc is not None:
            nginx_proc.send_signal(signal.SIGQUIT)
            nginx_proc.wait(30)
        for group in groups:
            stop(group)
        redis.stop()
        standby.stop()  # pg_ctl stop: the postmaster whose PID its data directory's postmaster.pid holds
        postgres.stop()
        standby.remove()  # its directory, or the shared one it links to when PostgreSQL cannot reach root
        shutil.rmtree(root, ignore_errors=True)
    return results


def report(results: list[Result]) -> str:
    lines = [f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s through Nginx; {os.cpu_count()} cores; "
             f"load average before/after shown by the caller",
             f"{'endpoint':12} {'req/s':>9} {'2xx':>9} {'other':>6} {'errors':>6} {'p50 ms':>7} {'p90 ms':>7} "
             f"{'p99 ms':>7} {'rows':>9} {'missing':>7}"]
    for r in results:
        missing = "" if r.rows is None else str(max(r.accepted - r.rows, 0))
        lines.append(f"{r.name:12} {r.requests_per_s:9.0f} {r.accepted:9d} {r.other:6d} {r.errors:6d} "
                     f"{r.p50_ms:7.1f} {r.p90_ms:7.1f} {r.p99_ms:7.1f} {'' if r.rows is None else r.rows:>9} "
                     f"{missing:>7}")
    for r in results:
        if r.rows and r.transactions:
            lines.append(f"{r.name}: {r.transactions} transactions, {r.rows / r.transactions:.1f} events each")
    lines.append(f"CPU during the measured run, in % of one core (the machine has {os.cpu_count()}; "
                 "the rest went to other processes or idled):")
    for r in results:
        parts = ", ".join(f"{part} {seconds / DURATION:.0%}" for part, seconds in r.cpu.items())
        requests = max(r.requests_per_s * DURATION, 1)
        ours = {part: seconds / requests * 1e6 for part, seconds in r.cpu.items() if part != "others"}
        lines.append(f"  {r.name:12} {parts}; per request {sum(ours.values()):.0f} µs ("
                     + ", ".join(f"{part} {value:.0f}" for part, value in ours.items()) + ")")
    by_name = {r.name: r for r in results}
    if {"ingest", "ingest-before"} <= set(by_name):
        per_event = {name: {part: seconds / max(by_name[name].rows or 0, 1) * 1e6
                            for part, seconds in by_name[name].cpu.items() if part != "others"}
                     for name in ("ingest-before", "ingest")}
        server = [per_event[name]["server"] for name in ("ingest-before", "ingest")]
        total = [sum(per_event[name].values()) for name in ("ingest-before", "ingest")]
        lines.append(f"CPU per committed event, {BEFORE} -> this checkout: server {server[0]:.0f} -> "
                     f"{server[1]:.0f} µs ({server[1] / server[0] - 1:+.1%}), "
                     f"all parts {total[0]:.0f} -> {total[1]:.0f} µs ({total[1] / total[0] - 1:+.1%})")
    if {"hello", "ingest", "baseline"} <= set(by_name):
        ingest, hello, baseline = by_name["ingest"], by_name["hello"], by_name["baseline"]
        committed = (ingest.rows or 0) / DURATION
        lines.append(f"ingest committed events/s: {committed:.0f} = {committed / hello.requests_per_s:.0%} of hello; "
                     f"{committed / max((baseline.rows or 0) / DURATION, 1):.1f}x the one-row-per-event baseline")
    if STANDBY and "ingest" in by_name:
        lines.append("ingest with a streaming standby on loopback (none = the same run's plain ingest): "
                     "committed events/s, CPU µs per committed event, WAL the primary wrote")
        lines.append(f"{'standby':8} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'per batch':>9} "
                     f"{'all µs':>7} {'postgres':>8} {'standby':>8} {'server':>7} {'WAL B/ev':>8} {'WAL MB/s':>8} "
                     f"{'behind':>9}")
        for mode in ("none", *STANDBY):
            r = by_name["ingest" if mode == "none" else f"ingest-{mode}"]
            rows = max(r.rows or 0, 1)
            us = {part: seconds / rows * 1e6 for part, seconds in r.cpu.items() if part != "others"}
            wal = (r.wal_bytes or 0) / rows
            behind = "" if r.standby_behind is None else f"{r.standby_behind} B"
            lines.append(f"{mode:8} {rows / DURATION:9.0f} {r.p50_ms:7.1f} {r.p99_ms:7.1f} "
                         f"{rows / max(r.transactions, 1):9.1f} {sum(us.values()):7.0f} {us['postgres']:8.0f} "
                         f"{us.get('standby', 0.0):8.0f} {us['server']:7.0f} {wal:8.0f} "
                         f"{(r.wal_bytes or 0) / DURATION / 1e6:8.2f} {behind:>9}")
    return "\n".join(lines)


def test_ingest_benchmark() -> None:
    """Prints the figures; asserts only that no acknowledged event is missing."""
    load = os.getloadavg()
    results = run()
    print(f"\nload average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(report(results))
    for result in results:
        if result.rows is not None:
            assert result.rows >= result.accepted, f"{result.name}: {result.accepted} accepted, {result.rows} rows"


if __name__ == "__main__":
    test_ingest_benchmark()
