"""A fresh Debian 12 host for the deploy test: a debootstrapped root booted by ``systemd-nspawn -b``.

The container gets a network namespace of its own (made here with ``ip netns`` and a veth pair), so its
PostgreSQL, Redis, Nginx and Beacon use their production ports without colliding with anything on this
machine, and "listens only on loopback" means something. apt inside reaches Debian's mirror through an
apt-cacher-ng started here on the host end of the veth; its cache, the debootstrapped root and the built
releases live under ``/var/cache/beacon-deploy`` so that later runs download almost nothing.

Every process started here is tracked by PID and stopped by PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest

CACHE_DIR = Path(os.environ.get("BEACON_DEPLOY_CACHE", "/var/cache/beacon-deploy"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Bump when the way the cached root is made changes, so old caches are not reused.
ROOTFS_REVISION = 1
ROOTFS = CACHE_DIR / f"rootfs-debian12-r{ROOTFS_REVISION}"
APT_CACHE = CACHE_DIR / "apt-cacher-ng"
RELEASES_CACHE = CACHE_DIR / "releases"
# What a freshly installed Debian server has that a minbase root lacks: systemd as init and Python for
# Ansible. Everything else comes from the playbook.
ROOTFS_PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "iproute2", "ca-certificates")
# Not apt-cacher-ng's usual 3142: a system instance (which its Debian package starts) may hold that on
# every address. (apt-cacher-ng refuses ports above 32767.)
APT_PROXY_PORT = 13142


class ContainerError(RuntimeError):
    """The container could not be built, booted or reached."""


def _run(argv: Sequence[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and completed.returncode != 0:
        raise ContainerError(
            f"{' '.join(argv)} exited {completed.returncode}: {completed.stderr.strip() or completed.stdout.strip()}"
        )
    return completed


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def missing_requirements() -> list[str]:
    """What this machine lacks to run the deploy test (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root privileges")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "ip", "apt-cacher-ng"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            missing.append(tool)
    return missing


def require_machine(test: str) -> None:
    """Skip ``test`` (fail it under ``CI=true``) naming what this machine lacks to run it."""
    missing = missing_requirements()
    if missing:
        message = f"the {test} needs " + ", ".join(missing) + " (see docs/deployment.md, 'The deploy test')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def ensure_rootfs() -> tuple[Path, bool]:
    """The cached pristine Debian 12 root; debootstrapped on first use. Returns (path, was it built now)."""
    with _locked(CACHE_DIR / ".rootfs.lock"):
        if (ROOTFS / "usr/lib/systemd/systemd").exists():
            return ROOTFS, False
        staging = CACHE_DIR / f".rootfs-staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(ROOTFS_PACKAGES)}",
                SUITE,
                str(staging),
                MIRROR,
            ],
            timeout=900,
        )
        # A real Debian 12 server also follows its point releases and security updates.
        (staging / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {SUITE} main\n"
            f"deb {MIRROR} {SUITE}-updates main\n"
            f"deb http://deb.debian.org/debian-security {SUITE}-security main\n"
        )
        _run(["chroot", str(staging), "apt-get", "clean"])
        shutil.rmtree(ROOTFS, ignore_errors=True)
        staging.rename(ROOTFS)
        return ROOTFS, True


@dataclass
class Network:
    """A named network namespace joined to the host by a veth pair with a /30 between them."""

    name: str
    host_if: str
    host_ip: str
    guest_ip: str

    @classmethod
    def create(cls, tag: int) -> Network:
        octet = 16 + tag % 200
        net = cls(
            name=f"beacon-deploy-{tag}",
            host_if=f"bdeploy{tag % 100000}",
            host_ip=f"10.213.{octet}.1",
            guest_ip=f"10.213.{octet}.2",
        )
        net.destroy()
        steps = [
            ["ip", "netns", "add", net.name],
            ["ip", "link", "add", net.host_if, "type", "veth", "peer", "name", "host0", "netns", net.name],
            ["ip", "addr", "add", f"{net.host_ip}/30", "dev", net.host_if],
            ["ip", "link", "set", net.host_if, "up"],
            ["ip", "-n", net.name, "link", "set", "lo", "up"],
            ["ip", "-n", net.name, "addr", "add", f"{net.guest_ip}/30", "dev", "host0"],
            ["ip", "-n", net.name, "link", "set", "host0", "up"],
            ["ip", "-n", net.name, "route", "add", "default", "via", net.host_ip],
        ]
        try:
            for step in steps:
                _run(step)
        except ContainerError:
            net.destroy()
            raise
        return net

    def destroy(self) -> None:
        _run(["ip", "link", "del", self.host_if], check=False)
        _run(["ip", "netns", "del", self.name], check=False)


@dataclass
class AptProxy:
    """apt-cacher-ng on the host end of the veth, with a configuration and logs of its own."""

    address: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    _log: BinaryIO | None = None

    def _open_log(self) -> BinaryIO:
        self._log = (self.workdir / "acng.out").open("wb")
        return self._log

    def start(self) -> None:
        conf = self.workdir / "acng-conf"
        logs = self.workdir / "acng-log"
        conf.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        APT_CACHE.mkdir(parents=True, exist_ok=True)
        # No Remap-* rules: Debian's default configuration redirects deb.debian.org to mirrors this
        # machine cannot reach; proxying the URLs apt asks for is all the test needs.
        (conf / "acng.conf").write_text("SupportDir: /usr/lib/apt-cacher-ng\nExThreshold: 4\n")
        binary = shutil.which("apt-cacher-ng") or "/usr/sbin/apt-cacher-ng"
        self.process = subprocess.Popen(
            [
                binary,
                "-c",
                str(conf),
                "ForeGround=1",
                f"BindAddress={self.address}",
                f"Port={APT_PROXY_PORT}",
                f"CacheDir={APT_CACHE}",
                f"LogDir={logs}",
                f"PidFile={self.workdir / 'acng.pid'}",
                f"SocketPath={self.workdir / 'acng.sock'}",
            ],
            stdout=self._open_log(),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ContainerError(f"apt-cacher-ng exited: {(self.workdir / 'acng.out').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection((self.address, APT_PROXY_PORT), 0.5):
                return
            time.sleep(0.1)
        raise ContainerError("apt-cacher-ng did not start listening within 15 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Container:
    """A booted copy of the cached root with systemd as PID 1 inside."""

    name: str
    workdir: Path
    network: Network
    nspawn: subprocess.Popen[bytes] | None = None
    leader: int = 0
    boots: int = 0
    console_logs: list[Path] = field(default_factory=list)
    _log: BinaryIO | None = None

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def address(self) -> str:
        return self.network.guest_ip

    def prepare(self, rootfs: Path, apt_proxy: str) -> None:
        """Copy the pristine root and give it a name and the apt proxy."""
        shutil.rmtree(self.root, ignore_errors=True)
        _run(["cp", "-a", "--reflink=auto", str(rootfs), str(self.root)], timeout=300)
        (self.root / "etc/hostname").write_text(f"{self.name}\n")
        (self.root / "etc/apt/apt.conf.d/01proxy").write_text(f'Acquire::http::Proxy "{apt_proxy}";\n')
        # No DNS inside: apt goes through the proxy, and nothing else needs names but localhost.
        resolv = self.root / "etc/resolv.conf"
        resolv.unlink(missing_ok=True)
        resolv.write_text("# deploy test: no resolver\n")

    def boot(self, timeout: float = 90) -> float:
        """Start systemd-nspawn and wait until systemd inside reports the boot finished; return seconds."""
        started = time.monotonic()
        self.boots += 1
        log = self.workdir / f"console-{self.boots}.log"
        self.console_logs.append(log)
        self.nspawn = subprocess.Popen(
            [
                "systemd-nspawn",
                "--boot",
                # No systemd as PID 1 on this machine: no machined to register with, no unit to move to.
                "--register=no",
                "--keep-unit",
                f"--directory={self.root}",
                f"--machine={self.name}",
                f"--network-namespace-path=/run/netns/{self.network.name}",
                "--console=read-only",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
                # The firewall (ufw) needs to manage netfilter rules; the container has a network
                # namespace of its own, so this touches nothing on the host.
                "--capability=CAP_NET_ADMIN",
            ],
            # ufw also sets net.* sysctls: "network" makes only /proc/sys/net writable, and that belongs
            # to the container's own network namespace.
            env={**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
            stdin=subprocess.DEVNULL,
            stdout=self._open_log(log),
            stderr=subprocess.STDOUT,
        )
        self.leader = self._find_leader(started + timeout)
        # Right after PID 1 starts, systemctl cannot reach it yet ("Failed to connect to bus"): retry
        # until it answers, then let it wait for the end of the boot.
        deadline = started + timeout
        state = ""
        while time.monotonic() < deadline:
            remaining = max(1.0, deadline - time.monotonic())
            result = self.run(["systemctl", "is-system-running", "--wait"], timeout=remaining, check=False)
            state = result.stdout.strip()
            # "offline" is what systemctl prints while it cannot reach PID 1 yet.
            if state in ("running", "degraded", "maintenance", "stopping"):
                break
            time.sleep(0.2)
        if state not in ("running", "degraded"):
            raise ContainerError(f"container boot ended in state {state!r}; see {log}")
        return time.monotonic() - started

    def _open_log(self, path: Path) -> BinaryIO:
        self.close_logs()
        self._log = path.open("wb")
        return self._log

    def close_logs(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _find_leader(self, deadline: float) -> int:
        assert self.nspawn is not None
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise ContainerError(
                    f"systemd-nspawn exited with {self.nspawn.returncode}; see {self.console_logs[-1]}"
                )
            with contextlib.suppress(OSError):
                for pid in children.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            time.sleep(0.05)
        raise ContainerError("systemd did not start inside the container")

    def run(
        self, argv: Sequence[str], timeout: float = 120, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container (all its namespaces), as root."""
        command = ["nsenter", f"--target={self.leader}", "--all", "--", *argv]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, input=input
        )
        if check and completed.returncode != 0:
            raise ContainerError(
                f"in container: {' '.join(argv)} exited {completed.returncode}:\n"
                f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
            )
        return completed

    def reboot(self, timeout: float = 120) -> float:
        """Reboot: systemd inside shuts everything down, nspawn exits, and we boot the same root again."""
        assert self.nspawn is not None
        started = time.monotonic()
        self.run(["systemctl", "reboot"], check=False)
        try:
            code = self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ContainerError("the container did not shut down for the reboot") from None
        # systemd-nspawn exits with 133 when the container asked for a reboot.
        if code != 133:
            raise ContainerError(f"systemd-nspawn exited {code} instead of 133 on reboot")
        self.boot(timeout)
        return time.monotonic() - started

    def stop(self, timeout: float = 60) -> None:
        """Power the container off (SIGTERM to nspawn asks systemd inside to), killing it if it hangs."""
        proc = self.nspawn
        if proc is None or proc.poll() is not None:
            self.close_logs()
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            if self.leader and Path(f"/proc/{self.leader}").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.leader, signal.SIGKILL)
        self.close_logs()
