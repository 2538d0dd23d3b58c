"""Beacon on five hosts survives losing any one of them, under a steady load of events through both app hosts.

Run with `make deploy-test-multi` (not part of `make test`: it provisions five hosts). The tests run in this
order on one cluster: the provisioned topology, the PostgreSQL primary powered off, the old primary back as
a replica, the Redis master powered off, one app host powered off, a rolling upgrade. Figures are printed at
the end of the run and recorded in docs/benchmarks.md.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

from tests.deploy_multi.conftest import ANSIBLE_DIR, REPO, SERVER_NAME, Cluster, Host, figure, record

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(5400)]

SITE = "multi-host.example"
ADMIN_EMAIL = "admin@multi-host.example"
ADMIN_PASSWORD = "a long multi-host password"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_TLS = ssl.create_default_context()
# Each app host made its own self-signed certificate; the test speaks to addresses, not to the name.
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE


def request(host: Host, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"https://{host.address}{path}", data=body, method=method,
                                 headers={"Host": SERVER_NAME, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_TLS) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@dataclass
class Sent:
    """One event request: when it left and came back, through which app host, and its answer."""

    path: str
    app: str
    started: float
    finished: float
    status: int | str
    retry_after: str | None


class Load:
    """A steady stream of pageviews through every app host's Nginx, each with a unique pathname."""

    def __init__(self, cluster: Cluster, label: str, per_host_per_second: float = 4.0) -> None:
        self.cluster = cluster
        self.label = label
        self.interval = 1.0 / per_host_per_second
        self.stopped = threading.Event()
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(host,), daemon=True) for host in cluster.apps()]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, host: Host) -> None:
        number = 0
        while not self.stopped.is_set():
            number += 1
            path = f"/{self.label}/{host.name}/{number}"
            body = json.dumps({"name": "pageview", "url": f"https://{SITE}{path}", "domain": SITE}).encode()
            started = time.monotonic()
            retry_after = None
            try:
                status_code, headers, _ = request(host, "POST", "/api/event", body,
                                                  {"Content-Type": "text/plain", "User-Agent": UA})
                status: int | str = status_code
                retry_after = headers.get("Retry-After")
            except OSError as exc:
                status = type(exc).__name__
            finished = time.monotonic()
            with self._lock:
                self.sent.append(Sent(path, host.name, started, finished, status, retry_after))
            self.stopped.wait(max(0.0, self.interval - (finished - started)))

    def accepted(self) -> set[str]:
        return {s.path for s in self.sent if s.status == 202}

    def refused(self) -> list[Sent]:
        return [s for s in self.sent if s.status != 202]

    def summary(self) -> str:
        refused = self.refused()
        span = (max(s.finished for s in refused) - min(s.started for s in refused)) if refused else 0.0
        slowest = max((s.finished - s.started for s in self.sent), default=0.0)
        kinds = sorted({str(s.status) for s in refused})
        return (f"{len(self.sent)} sent, {len(self.accepted())} accepted (202), {len(refused)} refused "
                f"{kinds} over {span:.1f} s, slowest answer {slowest:.1f} s")


def stored_paths(cluster: Cluster, label: str) -> set[str]:
    leader = cluster.leader()
    assert leader is not None, "no PostgreSQL primary"
    rows = cluster.psql(leader, f"SELECT pathname FROM events WHERE hostname = '{SITE}' "
                                f"AND pathname LIKE '/{label}/%'")
    return set(rows.splitlines())


def wait_until(what: str, predicate: object, timeout: float, interval: float = 0.5) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f} s", pytrace=False)


def health_ok(host: Host) -> bool:
    try:
        return request(host, "GET", "/api/health", timeout=5)[0] == 200
    except OSError:
        return False


def test_topology_is_provisioned(cluster: Cluster) -> None:
    """One Patroni leader with a synchronous standby and a replica; one Redis master seen by three Sentinels;
    every app host healthy through its own Nginx."""
    for host in cluster.apps():
        record(f"wait for /api/health on {host.name}", wait_until(f"{host.name} healthy", lambda h=host: health_ok(h),
                                                                  180))
    status, state = cluster.patroni(cluster.data()[0], "cluster")
    assert 200 == status, state
    roles = sorted(member["role"] for member in state["members"])
    assert ["leader", "replica", "sync_standby"] == roles, state
    masters = {cluster.sentinel_master(host) for host in cluster.data()}
    assert 1 == len(masters) and "" not in masters, masters
    replicas = cluster.redis_cli(cluster.hosts["data1"], "info", "replication")
    assert "connected_slaves:2" in replicas.replace("\r", ""), replicas
    cluster.hosts["app1"].container.run(["beacon", "site", "add", SITE, "--exists-ok"])
    cluster.hosts["app1"].container.run(["beacon", "createuser", "--email", ADMIN_EMAIL, "--password-stdin",
                                         "--admin"], input=ADMIN_PASSWORD + "\n")
    for host in cluster.apps():
        assert "data1" in signed_in_monitoring(host), f"the monitoring page through {host.name} lists no cluster"


def sign_in(client: httpx.Client) -> None:
    """Sign the admin in through ``client``'s app host's login form (a session in Redis, through Sentinel)."""
    page = client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text[:2000]
    answer = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/",
                                         "_csrf_token": token.group(1)})
    assert 303 == answer.status_code, answer.text[:2000]


def signed_in_monitoring(host: Host) -> str:
    """Sign in through ``host``'s login form, then return the monitoring page's cluster section."""
    with httpx.Client(base_url=f"https://{host.address}", headers={"Host": SERVER_NAME}, verify=False,
                      timeout=30) as client:
        sign_in(client)
        monitoring = client.get("/admin/monitoring", headers={"Accept": "text/html"})
        assert 200 == monitoring.status_code, monitoring.text[:2000]
        start = monitoring.text.find('data-section="cluster"')
        assert start >= 0, monitoring.text[:2000]
        return monitoring.text[start:monitoring.text.find("</section>", start)]


def session_cookie(host: Host) -> str:
    """A signed-in session's ``Cookie`` header value, for WebSocket handshakes."""
    with httpx.Client(base_url=f"https://{host.address}", headers={"Host": SERVER_NAME}, verify=False,
                      timeout=30) as client:
        sign_in(client)
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


class LiveClients:
    """Dashboards left open: WebSocket clients spread over every app host's Nginx (as a browser reaches one of
    several DNS records), each Nginx spreading them over every app host's realtime process.

    Each client behaves like app/frontend/dashboard.js: it pings every ``every`` seconds, drops a socket from
    which nothing came for two of those (a path to a powered-off host goes silent, it does not close) or that
    closed, and opens a new one through the same address; when an address does not connect or answer the
    handshake, it tries the next (as a browser falls back to a domain's next address).
    """

    def __init__(self, addresses: list[str], port: int, origin: str, cookie: str, count: int = 8,
                 every: float = 2.0) -> None:
        """``addresses``:``port`` are the Nginx servers (client ``i`` starts on ``addresses[i % n]``),
        ``origin`` Beacon's base URL (its name and port are the handshake's), ``cookie`` a signed-in session's
        ``Cookie`` value."""
        self.addresses, self.port, self.origin, self.cookie, self.every = addresses, port, origin, cookie, every
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.opened: list[list[tuple[float, str]]] = [[] for _ in range(count)]
        """Per client, when each of its sockets said hello (time.monotonic()) and through which address."""
        self.lost: list[list[tuple[float, str]]] = [[] for _ in range(count)]
        """Per client, when each of its sockets was given up, and which address it was through."""
        self.heard = [0.0] * count
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)]

    def __enter__(self) -> LiveClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, index: int) -> None:
        delay = 0.5
        address = self.addresses[index % len(self.addresses)]
        while not self.stopped.is_set():
            said_hello = False
            try:
                sock = socket.create_connection((address, self.port), timeout=10)
                with ws_connect(f"wss://{urlsplit(self.origin).netloc}/ws", sock=sock, ssl=_TLS,
                                server_hostname=urlsplit(self.origin).hostname, origin=Origin(self.origin),
                                additional_headers={"Cookie": self.cookie},
                                open_timeout=10, close_timeout=1, ping_interval=None, compression=None) as ws:
                    hello = json.loads(ws.recv(timeout=10))
                    assert "hello" == hello["type"], hello
                    said_hello = True
                    with self.lock:
                        self.opened[index].append((time.monotonic(), address))
                        self.heard[index] = time.monotonic()
                    delay = 0.5
                    next_ping = time.monotonic()
                    while not self.stopped.is_set():
                        if time.monotonic() >= next_ping:
                            ws.send('{"type":"ping"}')
                            next_ping += self.every
                        try:
                            ws.recv(timeout=max(0.05, next_ping - time.monotonic()))
                            with self.lock:
                                self.heard[index] = time.monotonic()
                        except TimeoutError:
                            pass
                        if time.monotonic() - self.heard[index] > 2 * self.every:
                            break
            except (OSError, WebSocketException, TimeoutError, AssertionError, ValueError, KeyError):
                pass
            if self.stopped.is_set():
                return
            with self.lock:
                self.lost[index].append((time.monotonic(), address))
            if not said_hello:
                address = self.addresses[(self.addresses.index(address) + 1) % len(self.addresses)]
            self.stopped.wait(delay / 2 + delay / 2 * (index + 1) / len(self.opened))
            delay = min(delay * 2, 15.0)

    def connected(self) -> bool:
        """Whether every client heard from its socket within the last two ping intervals."""
        now = time.monotonic()
        with self.lock:
            return all(now - heard <= 2 * self.every for heard in self.heard)

    def reconnections(self, since: float, through: str) -> list[float]:
        """For each client whose socket through ``through`` was given up after ``since``: seconds from
        ``since`` to its next hello (any address); clients not back yet are left out."""
        with self.lock:
            back = []
            for lost, opened in zip(self.lost, self.opened, strict=True):
                first_lost = min((t for t, a in lost if t > since and a == through), default=None)
                if first_lost is not None:
                    again = [t for t, _ in opened if t > first_lost]
                    if again:
                        back.append(min(again) - since)
            return back

    def dropped(self, since: float, through: str) -> int:
        """How many clients gave up a socket through ``through`` after ``since``."""
        with self.lock:
            return sum(1 for lost in self.lost if any(t > since and a == through for t, a in lost))

    def now_through(self) -> list[str]:
        """The address each client's latest socket is through."""
        with self.lock:
            return [opened[-1][1] if opened else "" for opened in self.opened]


def test_postgresql_primary_power_off(cluster: Cluster) -> None:
    """The primary's host loses power under load: a standby is promoted within 30 s and no 202 is lost."""
    old = cluster.leader()
    assert old is not None
    survivors = [host for host in cluster.data() if host is not old]
    with Load(cluster, "pg") as load:
        time.sleep(10)
        killed = time.monotonic()
        old.power_off()
        promoted = wait_until("a new PostgreSQL primary", lambda: cluster.leader(survivors) is not None, 60, 0.2)
        # Keep the load on until every app host has written through the new primary for a while.
        time.sleep(20)
    stored = stored_paths(cluster, "pg")
    lost = load.accepted() - stored
    refused = load.refused()
    first_ok_after = min((s.finished - killed for s in load.sent if s.started > killed and s.status == 202),
                         default=float("nan"))
    figure("PostgreSQL primary power-off: new primary after", f"{promoted:.1f} s")
    figure("PostgreSQL primary power-off: events", load.summary())
    figure("PostgreSQL primary power-off: first 202 sent after the kill, answered after", f"{first_ok_after:.1f} s")
    figure("PostgreSQL primary power-off: acknowledged events lost", str(len(lost)))
    cluster.powered_off = old
    assert promoted <= 30
    assert set() == lost
    assert all(s.status == 503 and s.retry_after for s in refused if isinstance(s.status, int)), refused[:10]


def test_old_primary_rejoins_as_replica(cluster: Cluster) -> None:
    """The old primary boots, is rewound if needed, and streams from the new primary."""
    old = cluster.powered_off
    assert old is not None, "the primary power-off test did not run"
    record(f"boot {old.name} again", old.power_on())
    rejoined = wait_until(f"{old.name} back as a replica", lambda: cluster.patroni(old, "replica")[0] == 200, 180)
    figure("old PostgreSQL primary back as a streaming replica after boot", f"{rejoined:.1f} s")
    _, state = cluster.patroni(old, "cluster")
    assert sorted(m["role"] for m in state["members"]) == ["leader", "replica", "sync_standby"], state


def _redis_master(cluster: Cluster) -> Host:
    address = cluster.sentinel_master(next(h for h in cluster.data() if h.container.nspawn is not None
                                           and h.container.nspawn.poll() is None))
    return next(host for host in cluster.data() if host.address == address)


def test_redis_master_power_off(cluster: Cluster) -> None:
    """The Redis master's host loses power: Sentinel promotes a replica, ingest (rate limits, visits, presence),
    sign-in and Dramatiq keep working, and nothing in PostgreSQL is lost."""
    master = _redis_master(cluster)
    if cluster.leader() is master:
        # Keep the kills apart: move the PostgreSQL primary away first (the planned switchover of the runbook).
        target = next(h for h in cluster.data() if h is not master)
        master.container.run(["patronictl", "-c", "/etc/patroni/config.yml", "switchover", "--force",
                              "--candidate", target.name])
        wait_until("switchover", lambda: cluster.leader() is target, 60)
    survivors = [host for host in cluster.data() if host is not master]
    try:
        with Load(cluster, "redis") as load:
            time.sleep(10)
            master.power_off()
            promoted = wait_until("a new Redis master", lambda: cluster.sentinel_master(survivors[0]) not in
                                  ("", master.address), 60, 0.2)
            time.sleep(20)
        lost = load.accepted() - stored_paths(cluster, "redis")
        figure("Redis master power-off: Sentinel's new master after", f"{promoted:.1f} s")
        figure("Redis master power-off: events", load.summary())
        figure("Redis master power-off: acknowledged events lost", str(len(lost)))
        assert set() == lost
        # Every process's Redis client reaches the new master: health, then the worker's and scheduler's
        # heartbeats (beacon check) within their interval.
        for host in cluster.apps():
            healthy = wait_until(f"{host.name} healthy after the Redis failover", lambda h=host: health_ok(h), 120, 1)
            figure(f"Redis master power-off: {host.name} /api/health 200 again after the load stopped",
                   f"{healthy:.1f} s")
            wait_until(f"`beacon check` passing on {host.name}",
                       lambda h=host: h.container.run(["beacon", "check"], check=False).returncode == 0, 120, 2)
        print(cluster.hosts["app1"].container.run(["beacon", "check"], check=False).stdout, flush=True)
        # Sign-in and sessions work through both app hosts, and the monitoring page names the new master.
        new_master = cluster.sentinel_master(survivors[0])
        for host in cluster.apps():
            assert f"{new_master}:" in signed_in_monitoring(host), f"{host.name} does not show {new_master}"
    finally:
        record(f"boot {master.name} again", master.power_on())
    wait_until(f"{master.name} back as a Redis replica",
               lambda: "role:slave" in cluster.redis_cli(master, "info", "replication"), 120)


def test_app_host_power_off(cluster: Cluster) -> None:
    """One app host loses power: the other one's Nginx keeps answering (its upstreams skip the dead host), no
    acknowledged event is lost, and open dashboards reconnect to the other host: those whose socket went
    through the other host's Nginx to the dead host's realtime process, and those connected through the dead
    host's own Nginx (falling back to the other address).

    The one thing no proxy can save is a request it had already handed to the dead host when the power went:
    Nginx does not send a POST a second time (it might count the event twice), so that request times out (504)
    and is not acknowledged. Such in-flight requests, started before the power-off, are counted and reported;
    every request started after it must be a 202.
    """
    dead, alive = cluster.apps()
    cookie = session_cookie(alive)
    try:
        with (Load(cluster, "app") as load,
              LiveClients([dead.address, alive.address], 443, f"https://{SERVER_NAME}", cookie) as live):
            wait_until("every WebSocket client connected", live.connected, 60)
            time.sleep(5)
            powered_off = time.monotonic()
            dead.power_off()
            time.sleep(30)
            # Every dashboard is connected again (heard from within two pings) while the host is still off.
            wait_until("every WebSocket client connected again", live.connected, 60)
            through = live.now_through()
    finally:
        record(f"boot {dead.name} again", dead.power_on())
    through_alive = [s for s in load.sent if s.app == alive.name]
    failed = [s for s in through_alive if s.status != 202]
    in_flight = [s for s in failed if s.started < powered_off]
    slowest = max((s.finished - s.started for s in through_alive), default=0.0)
    figure("app host power-off: events through the other app host",
           f"{len(through_alive)} sent, {len(failed)} not 202 ({len(in_flight)} of them in flight to the dead "
           f"host at the power-off), slowest {slowest:.1f} s")
    from_dead = live.reconnections(powered_off, dead.address)
    from_alive = live.reconnections(powered_off, alive.address)
    dropped_alive = live.dropped(powered_off, alive.address)
    figure("app host power-off: WebSocket clients through the dead host's Nginx",
           f"{live.dropped(powered_off, dead.address)} lost, {len(from_dead)} reconnected through "
           f"{alive.name}'s, the last {max(from_dead, default=float('nan')):.1f} s after the power-off")
    figure("app host power-off: WebSocket clients through the other host's Nginx",
           f"{len(live.opened) // 2} connected, {dropped_alive} lost (socket on the dead host's realtime), "
           f"{len(from_alive)} reconnected, the last {max(from_alive, default=float('nan')):.1f} s after")
    wait_until(f"{dead.name} healthy again", lambda: health_ok(dead), 180)
    assert load.accepted() <= stored_paths(cluster, "app"), "an acknowledged event was lost"
    assert [] == [s for s in failed if s not in in_flight]
    assert len(in_flight) <= 1  # one request at a time per app host in the Load
    assert [alive.address] * len(through) == through, (live.lost, live.opened)
    assert len(live.opened) // 2 == len(from_dead), (live.lost, live.opened)
    # Each Nginx worker spreads its sockets over both hosts' realtime processes: some went to the dead one.
    assert dropped_alive > 0, "no socket through the other host's Nginx went to the dead host's realtime"
    assert dropped_alive == len(from_alive), (live.lost, live.opened)


def _source_copy(target: Path) -> Path:
    """A copy of the checkout's release files with one changed line: a new version to roll out."""
    spec = importlib.util.spec_from_file_location("build_release",
                                                  ANSIBLE_DIR / "roles/beacon_app/files/build_release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for rel in module.source_files(REPO):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target / rel)
    with (target / "app/__init__.py").open("a") as handle:
        handle.write("# multi-host deploy test: a new version\n")
    return target


def test_rolling_upgrade_under_load(cluster: Cluster) -> None:
    """A new release rolls out one app host at a time (serial: 1) while events keep arriving: none fails."""
    source = _source_copy(cluster.workdir / "next-version")
    before = {h.name: h.container.run(["readlink", "/opt/beacon/current"]).stdout.strip() for h in cluster.apps()}
    with Load(cluster, "upgrade") as load:
        ok, output, log = cluster.playbook("rolling upgrade (serial 1)", (
            "-e", "beacon_app_serial=1",
            "-e", f"beacon_app_source_dir={source}", "-e", f"beacon_nginx_source_dir={source}"))
    after = {h.name: h.container.run(["readlink", "/opt/beacon/current"]).stdout.strip() for h in cluster.apps()}
    figure("rolling upgrade: events", load.summary())
    assert ok, f"upgrade failed (log: {log}):\n{output[-6000:]}"
    assert all(before[name] != after[name] for name in before), (before, after)
    assert [] == load.refused()
    assert set() == load.accepted() - stored_paths(cluster, "upgrade")
