"""Circus hooks keeping each watcher's prometheus-client multiprocess directory right (circus.ini).

Kept apart from :mod:`app.core.metrics` so that circusd imports prometheus-client's small multiprocess module
only, not the web framework.

circus.ini sets ``PROMETHEUS_MULTIPROC_DIR`` per watcher (``[env:<watcher>]``) and names these hooks:
``hooks.before_start = app.core.metrics_hooks.wipe`` and ``hooks.after_reap = app.core.metrics_hooks.mark_dead``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _watcher_dir(watcher: Any) -> Path | None:
    env: Mapping[str, str] = getattr(watcher, "env", None) or {}
    directory = env.get(MULTIPROC_ENV)
    return Path(directory) if directory else None


def wipe(watcher: Any, arbiter: Any, hook_name: str, **kwargs: Any) -> bool:
    """``before_start``: empty the watcher's metrics directory, so a previous run's figures are gone."""
    directory = _watcher_dir(watcher)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    return True


def mark_dead(watcher: Any, arbiter: Any, hook_name: str, **kwargs: Any) -> bool:
    """``after_reap``: retire the live gauges of a process that exited (``multiprocess.mark_process_dead``)."""
    directory = _watcher_dir(watcher)
    pid = kwargs.get("process_pid")
    if directory is not None and pid:
        multiprocess.mark_process_dead(int(pid), str(directory))  # type: ignore[no-untyped-call]
    return True
