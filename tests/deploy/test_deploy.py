"""ansible/site.yml provisions a fresh Debian 12 host (systemd as PID 1) into a working, hardened Beacon.

The tests run in this order on one host: checks of the first deployment, the second run's changed=0,
backup and restore, then a reboot. Timings are printed at the end of the run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import ANSIBLE_DIR, REPO, SERVER_NAME, Deployment, record

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

UNITS = ("postgresql.service", "redis-server.service", "nginx.service", "beacon.service", "beacon-backup.timer")
WATCHERS = {"api", "realtime", "ingest", "analytics", "integrations", "compute", "worker", "scheduler"}
SITE = "deploy-test.example"
MAX_EXPOSURE = 3.0
"""Ceiling for `systemd-analyze security beacon` (0 = fully sandboxed, 10 = not at all)."""


def _https(deployment: Deployment) -> ssl.SSLContext:
    # Trust exactly the self-signed certificate the playbook made; the address is not its name.
    context = ssl.create_default_context(cafile=str(deployment.certificate))
    context.check_hostname = False
    return context


def request(
    deployment: Deployment, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        deployment.url + path, data=body, method=method, headers={"Host": SERVER_NAME, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=15, context=_https(deployment)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def health(deployment: Deployment) -> tuple[int, Any]:
    status, _, body = request(deployment, "GET", "/api/health")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def wait_healthy(deployment: Deployment, timeout: float = 120) -> float:
    started = time.monotonic()
    last: tuple[int, Any] = (0, None)
    while time.monotonic() - started < timeout:
        try:
            last = health(deployment)
        except OSError as exc:
            last = (0, str(exc))
        if last[0] == 200:
            return time.monotonic() - started
        time.sleep(1)
    pytest.fail(f"/api/health not 200 after {timeout:.0f} s: {last}", pytrace=False)


def watcher_states(deployment: Deployment) -> dict[str, str]:
    # /usr/local/bin/circusctl: the operator's command, no --endpoint flag.
    output = deployment.container.run(["circusctl", "status"]).stdout
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def failed_units(deployment: Deployment) -> list[str]:
    output = deployment.container.run(
        ["systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"]
    ).stdout
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def table_counts(deployment: Deployment) -> dict[str, int]:
    """Exact row counts of every table in Beacon's database."""
    tables = deployment.psql(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables ORDER BY 1"
    ).split()
    if not tables:
        return {}
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    return {name: int(count) for name, count in (row.split("|") for row in deployment.psql(query).splitlines())}


def test_every_unit_is_active(deployment: Deployment) -> None:
    """PostgreSQL, Redis, Nginx, Beacon and the backup timer are active, and no unit failed."""
    states = {unit: deployment.container.run(["systemctl", "is-active", unit], check=False).stdout.strip()
              for unit in UNITS}
    assert {unit: "active" for unit in UNITS} == states
    assert [] == failed_units(deployment)


def test_every_circus_watcher_is_active(deployment: Deployment) -> None:
    """`circusctl status` works without flags on the host and shows every watcher active."""
    assert dict.fromkeys(WATCHERS, "active") == watcher_states(deployment)


def test_health_is_200_through_nginx(deployment: Deployment) -> None:
    """GET https://host/api/health answers 200 through the container's Nginx with its certificate."""
    record("wait for /api/health through Nginx", wait_healthy(deployment))
    status, body = health(deployment)
    assert 200 == status, body


def test_fingerprinted_assets_are_served_for_a_year(deployment: Deployment) -> None:
    """The release ships the built assets: pages link them by fingerprint and Nginx caches them for a year."""
    status, _, page = request(deployment, "GET", "/login", headers={"Accept": "text/html"})
    assert 200 == status
    link = re.search(r'href="(/static/dist/css/beacon\.[0-9a-f]{12}\.css)"', page.decode())
    assert link is not None, page[:2000]
    status, headers, body = request(deployment, "GET", link.group(1))
    assert 200 == status
    assert "max-age=31536000, immutable" in headers.get("Cache-Control", "")
    assert link.group(1).endswith(f".{hashlib.sha256(body).hexdigest()[:12]}.css")


def test_http_redirects_to_https(deployment: Deployment) -> None:
    """Port 80 only redirects to HTTPS."""
    conn = socket.create_connection((deployment.container.address, 80), timeout=10)
    try:
        conn.sendall(f"GET /sites HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n".encode())
        head = conn.recv(4096).decode(errors="replace")
    finally:
        conn.close()
    assert re.match(r"HTTP/1\.1 30[18] ", head), head
    assert f"location: https://{SERVER_NAME}/sites".lower() in head.lower(), head


def test_event_posted_through_nginx_is_counted(deployment: Deployment) -> None:
    """A pageview POSTed to /api/event through Nginx is stored."""
    deployment.container.run(["beacon", "site", "add", SITE, "--exists-ok"])
    before = int(deployment.psql("SELECT count(*) FROM events") or 0)
    body = json.dumps({"name": "pageview", "url": f"https://{SITE}/deploy", "domain": SITE}).encode()
    status, _, answer = request(
        deployment,
        "POST",
        "/api/event",
        body,
        {"Content-Type": "text/plain", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) deploy-test"},
    )
    assert 202 == status, answer
    assert before + 1 == int(deployment.psql("SELECT count(*) FROM events"))


def test_postgresql_refuses_clients_without_password(deployment: Deployment) -> None:
    """PostgreSQL asks Beacon's role for a password over TCP and the local socket."""
    for host in ("127.0.0.1", "/var/run/postgresql"):
        result = deployment.container.run(
            ["runuser", "-u", "beacon", "--", "psql", "-X", "-w", "-h", host, "-U", "beacon", "-d", "beacon",
             "-c", "SELECT 1"],
            check=False,
        )
        assert 0 != result.returncode
        assert "password" in result.stderr, result.stderr


def test_redis_refuses_clients_without_password(deployment: Deployment) -> None:
    """Redis answers NOAUTH to a client that did not authenticate."""
    result = deployment.container.run(["redis-cli", "-h", "127.0.0.1", "SET", "deploy-test", "1"], check=False)
    assert "NOAUTH" in result.stdout + result.stderr


def test_no_beacon_process_listens_on_a_public_address(deployment: Deployment) -> None:
    """Only Nginx listens beyond loopback; Beacon, PostgreSQL and Redis are unreachable from outside."""
    output = deployment.container.run(["ss", "-Hltnp"]).stdout
    exposed = []
    for line in output.splitlines():
        fields = line.split()
        local, process = fields[3], " ".join(fields[5:])
        address = local.rsplit(":", 1)[0].strip("[]")
        if address not in ("127.0.0.1", "::1") and '"nginx"' not in process:
            exposed.append(line)
    assert [] == exposed
    for port in (5432, 6379, 9001, 8001):
        with pytest.raises(OSError):
            socket.create_connection((deployment.container.address, port), timeout=3).close()


MONITORING_JOBS = {"prometheus", "alertmanager", "beacon", "node", "postgresql", "redis", "nginx", "certificate"}
ALERT_GROUPS = {"beacon-targets", "beacon-http", "beacon-jobs", "beacon-host"}
EXPORTERS_UP = ("pg_up", "redis_up", "nginx_up")
"""Each exporter's own gauge: 1 when it reached PostgreSQL, Redis or Nginx's status page."""


def prometheus_api(deployment: Deployment, path: str) -> Any:
    """GET a Prometheus (or Alertmanager) API path on the host's loopback, from inside the host."""
    script = ("import sys, urllib.request; "
              "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")
    return json.loads(deployment.container.run(["python3", "-c", script, f"http://127.0.0.1:{path}"]).stdout)


def test_prometheus_scrapes_every_target_and_each_is_up(deployment: Deployment) -> None:
    """Prometheus (monitoring on) scrapes every Beacon watcher and every exporter, and reports each one up."""
    expected = {(watcher, "beacon") for watcher in WATCHERS}
    deadline = time.monotonic() + 90
    while True:
        targets = prometheus_api(deployment, "9090/api/v1/targets")["data"]["activeTargets"]
        health = {(t["labels"].get("watcher", t["labels"]["job"]), t["labels"]["job"]): t["health"] for t in targets}
        if all(state == "up" for state in health.values()) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert MONITORING_JOBS == {job for _, job in health}
    assert expected <= set(health)
    assert {key: "up" for key in health} == health, [(t["scrapeUrl"], t["lastError"]) for t in targets
                                                        if t["health"] != "up"]
    # An exporter answers its scrape even when it cannot reach what it watches: each says so in its own *_up.
    deadline = time.monotonic() + 60
    while True:
        reached = {name: _instant(deployment, name) for name in EXPORTERS_UP}
        if all(value == 1.0 for value in reached.values()) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert dict.fromkeys(EXPORTERS_UP, 1.0) == reached


def _instant(deployment: Deployment, query: str) -> float | None:
    """The single value of an instant PromQL query, or None when it has no sample."""
    result = prometheus_api(deployment, f"9090/api/v1/query?query={query}")["data"]["result"]
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_prometheus_loads_the_alert_rules(deployment: Deployment) -> None:
    """Beacon's alert rules are loaded and every rule evaluates without error; Alertmanager is ready."""
    groups = prometheus_api(deployment, "9090/api/v1/rules")["data"]["groups"]
    assert ALERT_GROUPS == {group["name"] for group in groups}
    rules = [rule for group in groups for rule in group["rules"]]
    assert 13 == len(rules)
    assert [] == [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] == "err"]
    config = prometheus_api(deployment, "9093/api/v2/status")["config"]["original"]
    assert "ops@beacon.test" in config


def test_second_run_changes_nothing(deployment: Deployment) -> None:
    """Running the playbook again reports changed=0."""
    second = deployment.playbook("second playbook run")
    assert second.ok, second.output[-4000:]
    assert 0 == second.recap["changed"], second.changed_tasks()


def _copy_source_tree(target: Path) -> Path:
    """A copy of the checkout's files (what a release is built from), for a "new version"."""
    spec = importlib.util.spec_from_file_location(
        "build_release", ANSIBLE_DIR / "roles/beacon_app/files/build_release.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for rel in module.source_files(REPO):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target / rel)
    return target


class Traffic(threading.Thread):
    """Requests through Nginx in a loop (health and events) while something else happens."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(daemon=True)
        self.deployment = deployment
        self.stopped = threading.Event()
        self.results: list[tuple[str, int | str]] = []

    def run(self) -> None:
        event = json.dumps({"name": "pageview", "url": f"https://{SITE}/upgrade", "domain": SITE}).encode()
        headers = {"Content-Type": "text/plain", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) upgrade-test"}
        deadline = time.monotonic() + 1200
        while not self.stopped.is_set() and time.monotonic() < deadline:
            for method, path, body in (("GET", "/api/health", None), ("POST", "/api/event", event)):
                try:
                    status: int | str = request(self.deployment, method, path, body, headers)[0]
                except OSError as exc:
                    status = f"{type(exc).__name__}: {exc}"
                self.results.append((path, status))
            # Four events a second from one address stay below ingest's per-address limit (600 a minute),
            # which would rightly answer 429 to a flood.
            time.sleep(0.25)

    def failures(self) -> list[tuple[str, int | str]]:
        return [(path, status) for path, status in self.results if status not in (200, 202)]


def test_upgrade_deploys_a_new_release_without_failing_requests(deployment: Deployment) -> None:
    """A new version is built, migrated and rolled out; requests during the rollout all succeed."""
    run = deployment.container.run
    deployment.container.run(["beacon", "site", "add", SITE, "--exists-ok"])
    before = run(["readlink", "/opt/beacon/current"]).stdout.strip()
    source = _copy_source_tree(deployment.workdir / "next-version")
    with (source / "app/__init__.py").open("a") as handle:
        handle.write("# deploy test: a new version of the code\n")
    # Every watcher's processes are replaced: the HTTP ones and the workers roll, the singleton scheduler restarts.
    old_pids = {w: set(deployment.container.run(["circusctl", "list", w]).stdout.strip().split(",")) for w in WATCHERS}

    traffic = Traffic(deployment)
    traffic.start()
    try:
        upgrade = deployment.playbook("upgrade playbook run", source_dir=source)
    finally:
        traffic.stopped.set()
        traffic.join(30)

    assert upgrade.ok, upgrade.output[-4000:]
    after = run(["readlink", "/opt/beacon/current"]).stdout.strip()
    assert before != after
    assert run(["test", "-e", f"/var/lib/beacon/migrated/{Path(after).name}"], check=False).returncode == 0
    assert len(traffic.results) > 20, traffic.results
    assert [] == traffic.failures()
    assert dict.fromkeys(WATCHERS, "active") == watcher_states(deployment)
    new_pids = {w: set(deployment.container.run(["circusctl", "list", w]).stdout.strip().split(",")) for w in WATCHERS}
    assert {w: set() for w in WATCHERS} == {w: old_pids[w] & new_pids[w] for w in WATCHERS}, (old_pids, new_pids)
    assert {w: len(old_pids[w]) for w in WATCHERS} == {w: len(new_pids[w]) for w in WATCHERS}
    record(f"requests during the upgrade ({len(traffic.results)})", 0.0)


def test_rollback_by_pointing_current_back(deployment: Deployment) -> None:
    """The documented rollback: switch the symlink to the previous release and reload."""
    run = deployment.container.run
    current = run(["readlink", "/opt/beacon/current"]).stdout.strip()
    releases = run(["ls", "-1t", "/opt/beacon/releases"]).stdout.split()
    previous = next(f"/opt/beacon/releases/{r}" for r in releases if f"/opt/beacon/releases/{r}" != current)
    started = time.monotonic()
    run(["ln", "-sfn", previous, "/opt/beacon/current.new"])
    run(["mv", "-T", "/opt/beacon/current.new", "/opt/beacon/current"])
    run(["systemctl", "reload", "beacon"], timeout=300)
    record("rollback (symlink and reload)", time.monotonic() - started)
    assert previous == run(["readlink", "/opt/beacon/current"]).stdout.strip()
    api_pid = run(["circusctl", "list", "api"]).stdout.strip().split(",")[0]
    # The venv's scripts name their release's interpreter in the shebang: the running code is `previous`'s.
    interpreter = run(["cat", f"/proc/{api_pid}/cmdline"]).stdout.split("\0")[0]
    assert interpreter.startswith(f"{previous}/venv/bin/python"), interpreter
    assert dict.fromkeys(WATCHERS, "active") == watcher_states(deployment)
    wait_healthy(deployment)


def test_systemd_sandbox_exposure(deployment: Deployment) -> None:
    """`systemd-analyze security beacon` rates the unit well sandboxed."""
    output = deployment.container.run(["systemd-analyze", "security", "--no-pager", "beacon.service"]).stdout
    match = re.search(r"Overall exposure level for beacon\.service: (\d+\.\d+)", output)
    assert match, output[-2000:]
    print(f"[deploy] systemd-analyze security beacon.service: {match[1]}")
    assert float(match[1]) <= MAX_EXPOSURE


def test_backup_restored_into_emptied_database_gives_identical_counts(deployment: Deployment) -> None:
    """The backup timer's service dumps the database; `beacon restore` rebuilds it after it is emptied."""
    run = deployment.container.run
    started = time.monotonic()
    run(["systemctl", "start", "beacon-backup.service"], timeout=300)
    dumps = run(["sh", "-c", "ls -1t /var/backups/beacon/beacon-*.dump"]).stdout.split()
    assert dumps, "no dump written"
    before = table_counts(deployment)
    assert before.get("public.events", 0) >= 1, before

    run(["systemctl", "stop", "beacon"], timeout=120)
    deployment.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION beacon;")
    assert {} == table_counts(deployment)
    restored = run(["beacon", "restore", dumps[0]], timeout=600)
    after = table_counts(deployment)
    run(["systemctl", "start", "beacon"], timeout=120)
    record("backup, empty and restore", time.monotonic() - started)

    assert before == after, restored.stdout + restored.stderr
    wait_healthy(deployment)


def test_everything_comes_back_after_a_reboot(deployment: Deployment) -> None:
    """After a reboot of the host every unit and watcher is active again and /api/health is 200."""
    record("reboot the container", deployment.container.reboot())
    record("healthy again after reboot", wait_healthy(deployment, timeout=180))
    states = {unit: deployment.container.run(["systemctl", "is-active", unit], check=False).stdout.strip()
              for unit in UNITS}
    assert {unit: "active" for unit in UNITS} == states
    assert dict.fromkeys(WATCHERS, "active") == watcher_states(deployment)
    assert [] == failed_units(deployment)
