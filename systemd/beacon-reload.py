"""Rolling reload of every Circus watcher, for `systemctl reload beacon` (ExecReload=).

Circus's own `reload` starts the new processes and stops the old ones at once, so for a second or two
nobody listens on a port while the new processes import and bind. Here, for each watcher serving HTTP:
add as many new processes as it has (`incr`), wait until every new one listens (they share the port
with the old ones through SO_REUSEPORT), then remove the same number (`decr`), which stops the oldest
gracefully. Watchers that do not listen (worker, scheduler) are restarted; their jobs wait in Redis.

New processes run the code `/opt/beacon/current` points at when they start, so deploying a release
is: switch the symlink, then reload. If new processes do not come up in time, the old ones are kept,
and the command fails naming the watcher.

Runs with the Python of the release's virtualenv, as the beacon user, under beacon.service's sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))
ENDPOINT = os.environ.get("CIRCUSCTL_ENDPOINT") or f"ipc://{os.environ.get('BEACON_RUN_DIR', '/run/beacon')}/circus.sock"
READY_TIMEOUT = float(os.environ.get("BEACON_RELOAD_TIMEOUT", "90"))


class ReloadError(Exception):
    pass


def circusctl(*args: str) -> str:
    # The arbiter runs one command at a time and answers "already running" to the next (its own
    # periodic process check counts as one): retry those for a while.
    deadline = time.monotonic() + 120
    while True:
        completed = subprocess.run(
            [CIRCUSCTL, "--endpoint", ENDPOINT, "--timeout", "120", *args],
            capture_output=True, text=True, check=False,
        )
        message = completed.stderr.strip() or completed.stdout.strip()
        if completed.returncode == 0 and "already running" not in message:
            return completed.stdout.strip()
        if "already running" not in message or time.monotonic() > deadline:
            raise ReloadError(f"circusctl {' '.join(args)}: {message}")
        time.sleep(0.2)


def pids(watcher: str) -> set[int]:
    out = circusctl("list", watcher)
    return {int(p) for p in out.replace(",", " ").split() if p.isdigit()}


def _listening_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def listens(pid: int) -> bool:
    """Whether process ``pid`` holds a listening TCP socket."""
    listening = _listening_inodes(pid)
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            return True
    return False


def roll(watcher: str, current: set[int]) -> None:
    count = len(current)
    circusctl("incr", "--waiting", watcher, str(count))
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        fresh = pids(watcher) - current
        if len(fresh) >= count and all(listens(pid) for pid in fresh):
            break
        if time.monotonic() > deadline:
            raise ReloadError(
                f"{watcher}: new processes did not listen within {READY_TIMEOUT:.0f} s; "
                f"the previous ones keep serving (see /var/log/beacon/{watcher}.log)"
            )
        time.sleep(0.2)
    # --waiting: return once the old processes have exited (each gets its graceful_timeout).
    circusctl("decr", "--waiting", watcher, str(count))


def main() -> int:
    try:
        circusctl("reloadconfig", "--waiting")
        watchers = [w.strip() for w in circusctl("list").split(",") if w.strip()]
        for watcher in watchers:
            current = pids(watcher)
            if current and any(listens(pid) for pid in current):
                roll(watcher, current)
            else:
                circusctl("restart", "--waiting", watcher)
            print(f"reloaded {watcher}", flush=True)
    except ReloadError as exc:
        print(f"beacon-reload: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
