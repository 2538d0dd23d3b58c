"""Session fixtures of the deploy test: one fresh systemd host, provisioned once by the real playbook."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.container import (
    APT_PROXY_PORT,
    RELEASES_CACHE,
    AptProxy,
    Container,
    Network,
    ensure_rootfs,
    require_machine,
)

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
SERVER_NAME = "beacon.test"
TIMINGS: list[tuple[str, float]] = []
"""(step, seconds) of this session, printed at the end of the run."""

_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                    r"\s+failed=(?P<failed>\d+)", re.MULTILINE)
# profile_roles' summary lines: "beacon_app ------------------------------ 120.34s".
_ROLE_TIME = re.compile(r"^(?P<role>\S+) -+ (?P<seconds>\d+\.\d+)s$", re.MULTILINE)


def record(step: str, seconds: float) -> None:
    TIMINGS.append((step, seconds))
    print(f"[deploy] {step}: {seconds:.1f} s", flush=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("deploy test timings")
        for step, seconds in TIMINGS:
            terminalreporter.write_line(f"{step:<45} {seconds:7.1f} s")
        # Indented steps ("  of which ...") are parts of the step above, not added again.
        total = sum(seconds for step, seconds in TIMINGS if not step.startswith(" "))
        terminalreporter.write_line(f"{'total':<45} {total:7.1f} s")


@dataclass
class PlaybookRun:
    """One ansible-playbook run and its recap."""

    returncode: int
    output: str
    log: Path
    recap: dict[str, int] = field(default_factory=dict)
    roles: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each role (and in tasks outside roles, by module name), largest first."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.recap.get("failed", 1) == 0 and self.recap.get("unreachable", 1) == 0

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (for failure messages)."""
        names, current = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                current = line
            elif line.startswith("changed:"):
                names.append(current)
        return names


@dataclass
class Deployment:
    """The provisioned host and how to talk to it."""

    container: Container
    workdir: Path
    secrets: dict[str, str]
    runs: list[PlaybookRun] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{self.container.address}"

    @property
    def certificate(self) -> Path:
        return self.container.root / "etc/ssl/beacon/beacon.crt"

    def inventory(self) -> Path:
        """An inventory for the container as it runs now (its leader PID changes on every boot).

        It reuses the example inventory's group_vars (the vault_* indirections an operator would use),
        with the secrets this session generated as host variables.
        """
        directory = self.workdir / "inventory"
        (directory / "group_vars").mkdir(parents=True, exist_ok=True)
        shutil.copytree(ANSIBLE_DIR / "inventories/example/group_vars/all", directory / "group_vars/all",
                        dirs_exist_ok=True)
        host_vars = {
            "ansible_connection": "community.docker.nsenter",
            "ansible_nsenter_pid": self.container.leader,
            "ansible_python_interpreter": "/usr/bin/python3",
            # A minimal Debian has no sudo; the nsenter connection is root already and su reaches postgres.
            "ansible_become_method": "ansible.builtin.su",
            "beacon_domain": SERVER_NAME,
            "beacon_app_build_dir": str(RELEASES_CACHE),
            # The optional monitoring role, with an email route (nothing listens on that smarthost: the
            # configuration is what is checked).
            "beacon_monitoring_enabled": True,
            "beacon_monitoring_alert_email_to": "ops@beacon.test",
            "beacon_monitoring_smtp_smarthost": "127.0.0.1:25",
            "beacon_monitoring_smtp_require_tls": False,
            **self.secrets,
        }
        lines = ["all:", "  hosts:", f"    {self.container.name}:"]
        lines += [f"      {key}: {value!r}" for key, value in host_vars.items()]
        lines += ["  children:"]
        for group in ("web", "app", "worker", "db", "redis"):
            lines += [f"    {group}:", "      hosts:", f"        {self.container.name}:"]
        path = directory / "hosts.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def playbook(self, label: str, extra_args: tuple[str, ...] = (), source_dir: Path | None = None) -> PlaybookRun:
        log = self.workdir / f"ansible-{len(self.runs) + 1}.log"
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_HOST_KEY_CHECKING="0",
            ANSIBLE_LOCAL_TEMP=str(self.workdir / "ansible-local"),
            PYTHONWARNINGS="ignore",
            # Seconds spent in each role, printed after the recap (ansible.posix ships with `ansible`).
            ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_roles",
            PROFILE_ROLES_SUMMARY_ONLY="true",
        )
        argv = [
            _ansible_playbook(),
            "-i",
            str(self.inventory()),
            str(ANSIBLE_DIR / "site.yml"),
            *extra_args,
        ]
        if source_dir is not None:
            argv += ["-e", f"beacon_app_source_dir={source_dir}", "-e", f"beacon_nginx_source_dir={source_dir}"]
        started = time.monotonic()
        completed = subprocess.run(
            argv, check=False, capture_output=True, text=True, env=env, cwd=ANSIBLE_DIR, timeout=1500
        )
        elapsed = time.monotonic() - started
        output = completed.stdout + completed.stderr
        log.write_text(output)
        recap = {}
        for match in _RECAP.finditer(completed.stdout):
            if match["host"] == self.container.name:
                recap = {k: int(v) for k, v in match.groupdict().items() if k != "host"}
        roles = {m["role"]: float(m["seconds"]) for m in _ROLE_TIME.finditer(completed.stdout) if m["role"] != "total"}
        run = PlaybookRun(completed.returncode, output, log, recap, roles)
        self.runs.append(run)
        record(f"{label} (changed={recap.get('changed')})", elapsed)
        print("[deploy]   by role: " + ", ".join(f"{role} {seconds:.1f} s" for role, seconds in roles.items()),
              flush=True)
        return run

    def sh(self, script: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.container.run(["/bin/sh", "-c", script], timeout=timeout, check=check)

    def psql(self, sql: str) -> str:
        """Run SQL in Beacon's database as the postgres superuser (peer authentication) and return rows."""
        completed = self.container.run(
            ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "beacon"],
            input=sql,
        )
        return completed.stdout.strip()


def _ansible_playbook() -> str:
    """The ansible-playbook installed beside this Python (the venv's `deploy` extra), else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")



@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    """A fresh Debian 12 container provisioned by ansible/site.yml (first run must succeed)."""
    require_machine("deploy test")
    tag = os.getpid()
    workdir = Path(tempfile.mkdtemp(prefix="beacon-deploy-", dir="/var/tmp"))
    network: Network | None = None
    proxy: AptProxy | None = None
    container: Container | None = None
    try:
        started = time.monotonic()
        rootfs, built = ensure_rootfs()
        record("debootstrap Debian 12 root" if built else "cached Debian 12 root", time.monotonic() - started)

        network = Network.create(tag)
        proxy = AptProxy(network.host_ip, workdir)
        proxy.start()
        container = Container(name="beacon-test", workdir=workdir, network=network)
        started = time.monotonic()
        container.prepare(rootfs, f"http://{network.host_ip}:{APT_PROXY_PORT}")
        record("copy the root", time.monotonic() - started)
        record("boot the container", container.boot())

        deployment = Deployment(
            container=container,
            workdir=workdir,
            secrets={
                # The example inventory maps these vault_* names onto every role's variables.
                "vault_beacon_db_password": secrets.token_hex(24),
                "vault_beacon_redis_password": secrets.token_hex(24),
                "vault_beacon_secret_key": secrets.token_urlsafe(48),
                "vault_beacon_internal_token": secrets.token_urlsafe(48),
            },
        )
        first = deployment.playbook("first playbook run")
        record("  of which the monitoring role", first.roles.get("beacon_monitoring", 0.0))
        if not first.ok:
            pytest.fail(f"first playbook run failed (log: {first.log}):\n{first.output[-6000:]}", pytrace=False)
        yield deployment
    finally:
        hold = os.environ.get("BEACON_DEPLOY_HOLD")
        if hold and container is not None:
            # For diagnosis: keep the container running until the named file is removed.
            Path(hold).touch()
            print(f"[deploy] holding the container (nsenter --target {container.leader} --all); rm {hold} to stop",
                  flush=True)
            while Path(hold).exists():
                time.sleep(2)
        if container is not None:
            container.stop()
        if proxy is not None:
            proxy.stop()
        if network is not None:
            network.destroy()
        if os.environ.get("BEACON_DEPLOY_KEEP"):
            print(f"[deploy] kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
