"""Session fixtures of the multi-host deploy test: five systemd hosts on a private bridge, one playbook run.

Three data hosts (PostgreSQL under Patroni with etcd, Redis with Sentinel) and two app hosts, each a booted
copy of the single-host test's cached Debian 12 root (tests/deploy/container.py) in a network namespace of its
own, joined to a bridge this test creates. The machine running the test is the bridge's first address: it
serves apt through the same apt-cacher-ng and plays the clients.

Everything started here is stopped by PID; the bridge, veths and namespaces are deleted by name, and every name
starts with ``bmh`` so nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.container import (
    APT_PROXY_PORT,
    RELEASES_CACHE,
    AptProxy,
    Container,
    ContainerError,
    Network,
    ensure_rootfs,
    require_machine,
)

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
INVENTORY = ANSIBLE_DIR / "inventories/multi-host"
SERVER_NAME = "beacon.test"
DATA_HOSTS = ("data1", "data2", "data3")
APP_HOSTS = ("app1", "app2")
TIMINGS: list[tuple[str, float]] = []
FIGURES: list[tuple[str, str]] = []
"""(what, figure) measured by this run, printed at the end for docs/benchmarks.md."""

_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                    r"\s+failed=(?P<failed>\d+)", re.MULTILINE)


def record(step: str, seconds: float) -> None:
    TIMINGS.append((step, seconds))
    print(f"[multi] {step}: {seconds:.1f} s", flush=True)


def figure(what: str, value: str) -> None:
    FIGURES.append((what, value))
    print(f"[multi] FIGURE {what}: {value}", flush=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("multi-host deploy test timings")
        for step, seconds in TIMINGS:
            terminalreporter.write_line(f"{step:<55} {seconds:7.1f} s")
    if FIGURES:
        terminalreporter.section("multi-host deploy test figures")
        for what, value in FIGURES:
            terminalreporter.write_line(f"{what:<55} {value}")


def _ip(*argv: str, check: bool = True) -> None:
    completed = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30, check=False)
    if check and completed.returncode != 0:
        raise ContainerError(f"ip {' '.join(argv)}: {completed.stderr.strip()}")


@dataclass
class Bridge:
    """A Linux bridge with a /24; each host is a network namespace joined to it by a veth pair."""

    name: str
    prefix: str
    members: list[Network] = field(default_factory=list)

    @property
    def host_ip(self) -> str:
        return f"{self.prefix}.1"

    @classmethod
    def create(cls, tag: int) -> Bridge:
        bridge = cls(name=f"bmh-br{tag % 10000}", prefix=f"10.214.{16 + tag % 200}")
        _ip("link", "del", bridge.name, check=False)
        _ip("link", "add", bridge.name, "type", "bridge")
        _ip("addr", "add", f"{bridge.host_ip}/24", "dev", bridge.name)
        _ip("link", "set", bridge.name, "up")
        return bridge

    def join(self, tag: int, index: int, host: str) -> Network:
        net = Network(name=f"bmh-{tag}-{host}", host_if=f"bmh{tag % 10000}{host}", host_ip=self.host_ip,
                      guest_ip=f"{self.prefix}.{index}")
        net.destroy()
        steps = [
            ["netns", "add", net.name],
            ["link", "add", net.host_if, "type", "veth", "peer", "name", "host0", "netns", net.name],
            ["link", "set", net.host_if, "master", self.name],
            ["link", "set", net.host_if, "up"],
            ["-n", net.name, "link", "set", "lo", "up"],
            ["-n", net.name, "addr", "add", f"{net.guest_ip}/24", "dev", "host0"],
            ["-n", net.name, "link", "set", "host0", "up"],
            ["-n", net.name, "route", "add", "default", "via", self.host_ip],
        ]
        for step in steps:
            _ip(*step)
        self.members.append(net)
        return net

    def destroy(self) -> None:
        for net in self.members:
            net.destroy()
        _ip("link", "del", self.name, check=False)


@dataclass
class Host:
    """One host of the cluster: its container, its veth, and whether it is powered on."""

    name: str
    container: Container
    network: Network

    @property
    def address(self) -> str:
        return self.network.guest_ip

    def sh(self, script: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.container.run(["/bin/sh", "-c", script], timeout=timeout, check=check)

    def power_off(self) -> None:
        """Pull the plug: the link goes down (peers see silence, not refusals) and every process dies at once."""
        _ip("link", "set", self.network.host_if, "down")
        proc = self.container.nspawn
        if self.container.leader and Path(f"/proc/{self.container.leader}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.container.leader, signal.SIGKILL)
        if proc is not None:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.container.close_logs()

    def power_on(self) -> float:
        _ip("link", "set", self.network.host_if, "up")
        return self.container.boot(180)


@dataclass
class Cluster:
    """The provisioned hosts and how to talk to them."""

    hosts: dict[str, Host]
    workdir: Path
    secrets: dict[str, str]
    bridge: Bridge
    runs: list[str] = field(default_factory=list)
    powered_off: Host | None = None
    """The data host the PostgreSQL kill powered off, for the rejoin test."""

    def data(self) -> list[Host]:
        return [self.hosts[name] for name in DATA_HOSTS]

    def apps(self) -> list[Host]:
        return [self.hosts[name] for name in APP_HOSTS]

    def inventory(self) -> Path:
        """The repository's multi-host inventory (its group_vars) with this run's hosts and secrets."""
        directory = self.workdir / "inventory"
        shutil.rmtree(directory, ignore_errors=True)
        shutil.copytree(INVENTORY / "group_vars", directory / "group_vars")
        host_vars = {
            "ansible_connection": "community.docker.nsenter",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become_method": "ansible.builtin.su",
            "beacon_domain": SERVER_NAME,
            "beacon_private_network": f"{self.bridge.prefix}.0/24",
            "beacon_app_build_dir": str(RELEASES_CACHE),
            # Five hosts share this machine: small memory settings.
            "beacon_patroni_shared_buffers_mb": 128,
            "beacon_patroni_effective_cache_size_mb": 512,
            "beacon_patroni_max_connections": 150,
            "beacon_redis_maxmemory_mb": 256,
            **self.secrets,
        }
        # Host variables, so that they win over the copied group_vars (an inventory file's group vars
        # would lose to them).
        lines = ["all:", "  children:"]
        for group, names in (("app", APP_HOSTS), ("data", DATA_HOSTS)):
            lines += [f"    {group}:", "      hosts:"]
            for name in names:
                host = self.hosts[name]
                lines += [f"        {name}:", f"          ansible_host: {host.address}",
                          f"          ansible_nsenter_pid: {host.container.leader}"]
                lines += [f"          {key}: {value!r}" for key, value in host_vars.items()]
        lines += ["    web: {children: {app: }}", "    worker: {children: {app: }}",
                  "    db: {children: {data: }}", "    redis: {children: {data: }}"]
        path = directory / "hosts.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def playbook(self, label: str, extra_args: tuple[str, ...] = ()) -> tuple[bool, str, Path]:
        log = self.workdir / f"ansible-{len(self.runs) + 1}.log"
        env = dict(os.environ)
        env.update(ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_LOCAL_TEMP=str(self.workdir / "ansible-local"), PYTHONWARNINGS="ignore")
        beside = Path(sys.executable).parent / "ansible-playbook"
        argv = [str(beside) if beside.exists() else "ansible-playbook", "-i", str(self.inventory()),
                str(ANSIBLE_DIR / "site.yml"), *extra_args]
        started = time.monotonic()
        # Streamed to the log as it runs, so a long first run can be followed with `tail -f`.
        print(f"[multi] {label}: ansible-playbook log in {log}", flush=True)
        with log.open("w") as handle:
            completed = subprocess.run(argv, check=False, stdout=handle, stderr=subprocess.STDOUT, text=True,
                                       env=env, cwd=ANSIBLE_DIR, timeout=3000)
        output = log.read_text()
        self.runs.append(label)
        recaps = [m.groupdict() for m in _RECAP.finditer(output)]
        ok = completed.returncode == 0 and len(recaps) == len(self.hosts) and all(
            r["failed"] == "0" and r["unreachable"] == "0" for r in recaps)
        changed = sum(int(r["changed"]) for r in recaps)
        record(f"{label} (changed={changed})", time.monotonic() - started)
        return ok, output, log

    def patroni(self, host: Host, path: str = "cluster") -> tuple[int, Any]:
        """GET Patroni's REST API of ``host`` from the test machine (the bridge is the private network)."""
        try:
            with urllib.request.urlopen(f"http://{host.address}:8008/{path}", timeout=3) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except OSError:
            return 0, None

    def leader(self, candidates: list[Host] | None = None) -> Host | None:
        """The data host whose Patroni answers 200 on /primary, if any."""
        for host in candidates or self.data():
            if self.patroni(host, "primary")[0] == 200:
                return host
        return None

    def psql(self, host: Host, sql: str) -> str:
        completed = host.container.run(
            ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "beacon"],
            input=sql)
        return completed.stdout.strip()

    def redis_cli(self, host: Host, *args: str, port: int = 6379) -> str:
        completed = host.container.run(
            ["redis-cli", "-p", str(port), "--no-auth-warning", "-a", self.secrets["vault_beacon_redis_password"],
             *args], check=False)
        return completed.stdout.strip()

    def sentinel_master(self, host: Host) -> str:
        lines = self.redis_cli(host, "sentinel", "get-master-addr-by-name", "beacon", port=26379).splitlines()
        return lines[0] if lines else ""



@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """Three data hosts and two app hosts provisioned by ansible/site.yml with the multi-host inventory."""
    require_machine("multi-host deploy test")
    tag = os.getpid()
    workdir = Path(tempfile.mkdtemp(prefix="beacon-multi-", dir="/var/tmp"))
    bridge: Bridge | None = None
    proxy: AptProxy | None = None
    hosts: dict[str, Host] = {}
    try:
        started = time.monotonic()
        rootfs, built = ensure_rootfs()
        record("debootstrap Debian 12 root" if built else "cached Debian 12 root", time.monotonic() - started)
        bridge = Bridge.create(tag)
        proxy = AptProxy(bridge.host_ip, workdir)
        proxy.start()
        started = time.monotonic()
        for index, name in enumerate((*DATA_HOSTS, *APP_HOSTS)):
            network = bridge.join(tag, 11 + index if name.startswith("data") else 21 + index - 3, name)
            hostdir = workdir / name
            hostdir.mkdir()
            container = Container(name=f"bmh-{name}", workdir=hostdir, network=network)
            container.prepare(rootfs, f"http://{bridge.host_ip}:{APT_PROXY_PORT}")
            (container.root / "etc/hostname").write_text(f"{name}\n")
            hosts[name] = Host(name, container, network)
        record("copy five roots", time.monotonic() - started)
        started = time.monotonic()
        for host in hosts.values():
            host.container.boot(180)
        record("boot five hosts", time.monotonic() - started)
        cluster = Cluster(hosts=hosts, workdir=workdir, bridge=bridge, secrets={
            "vault_beacon_db_password": secrets.token_hex(24),
            "vault_beacon_postgres_password": secrets.token_hex(24),
            "vault_beacon_replication_password": secrets.token_hex(24),
            "vault_beacon_rewind_password": secrets.token_hex(24),
            "vault_beacon_redis_password": secrets.token_hex(24),
            "vault_beacon_secret_key": secrets.token_urlsafe(48),
            "vault_beacon_internal_token": secrets.token_urlsafe(48),
        })
        ok, output, log = cluster.playbook("first playbook run (5 hosts)")
        if not ok:
            pytest.fail(f"first playbook run failed (log: {log}):\n{output[-8000:]}", pytrace=False)
        yield cluster
    finally:
        for host in hosts.values():
            with contextlib.suppress(Exception):
                if host.container.nspawn is not None and host.container.nspawn.poll() is None:
                    host.container.stop()
        if proxy is not None:
            proxy.stop()
        if bridge is not None:
            bridge.destroy()
        if os.environ.get("BEACON_DEPLOY_KEEP"):
            print(f"[multi] kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
