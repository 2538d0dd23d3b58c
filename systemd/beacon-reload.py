"""Rolling reload of every Circus watcher, for `systemctl reload beacon` (ExecReload=).

Circus's own `reload` starts the new processes and stops the old ones at once, so for a second or two
nobody listens on a port while the new processes import and bind. Here, for every watcher whose processes
listen (the HTTP services, and the workers for their /metrics): add as many new processes as it has
(`incr`), wait until every new one listens (they share the port with the old ones through SO_REUSEPORT),
then remove the same number (`decr`), which stops the oldest gracefully. Singleton watchers (the
scheduler: Circus answers `incr` on one without adding a process) and watchers that listen on nothing are
then restarted; their jobs wait in Redis.

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
from collections.abc import Callable
from pathlib import Path

CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))
RUN_DIR = os.environ.get("BEACON_RUN_DIR", "/run/beacon")
ENDPOINT = os.environ.get("CIRCUSCTL_ENDPOINT") or f"ipc://{RUN_DIR}/circus.sock"
READY_TIMEOUT = float(os.environ.get("BEACON_RELOAD_TIMEOUT", "120"))


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


def singleton(watcher: str) -> bool:
    """Whether ``watcher`` is a Circus singleton (at most one process: it cannot be rolled with `incr`)."""
    return circusctl("get", watcher, "singleton").strip().lower() == "singleton: true"


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


def wait_for(what: str, done: Callable[[], bool], hint: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not done():
        if time.monotonic() > deadline:
            raise ReloadError(f"{what} within {READY_TIMEOUT:.0f} s; {hint}")
        time.sleep(0.2)


def main() -> int:
    try:
        circusctl("reloadconfig", "--waiting")
        watchers = [w.strip() for w in circusctl("list").split(",") if w.strip()]
        before = {w: pids(w) for w in watchers}
        serving = [w for w in watchers
                   if before[w] and not singleton(w) and any(listens(pid) for pid in before[w])]
        # All HTTP watchers roll together, so the whole reload takes one start-up and one graceful stop.
        for watcher in serving:
            circusctl("incr", "--waiting", watcher, str(len(before[watcher])))
        for watcher in serving:
            def ready(w: str = watcher) -> bool:
                fresh = pids(w) - before[w]
                return len(fresh) >= len(before[w]) and all(listens(pid) for pid in fresh)

            wait_for(f"{watcher}: new processes did not listen", ready,
                     f"the previous ones keep serving (see /var/log/beacon/{watcher}.log)")
        for watcher in serving:
            # decr stops the oldest processes gracefully (each gets its graceful_timeout).
            circusctl("decr", watcher, str(len(before[watcher])))
        for watcher in serving:
            def stopped(w: str = watcher) -> bool:
                return not pids(w) & before[w]

            wait_for(f"{watcher}: old processes did not stop", stopped, "check `circusctl status`")
            print(f"reloaded {watcher}", flush=True)
        # The rest (the singleton scheduler, anything not listening): restart them (Dramatiq finishes
        # running jobs first, and queued ones wait in Redis).
        for watcher in watchers:
            if watcher not in serving:
                circusctl("restart", "--waiting", watcher)
                print(f"restarted {watcher}", flush=True)
    except ReloadError as exc:
        print(f"beacon-reload: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
