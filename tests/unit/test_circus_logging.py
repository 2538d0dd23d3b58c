"""circusd's logging configuration (circus.ini's ``loggerconfig``), loaded by circus' own loader in a fresh
interpreter: circus' format on standard error, without the ``arbiter_stop`` conflicts, every other record kept."""

from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "app" / "core" / "circus-logging.json"

SCRIPT = textwrap.dedent("""
    import logging, sys
    from circus import logger
    from circus.exc import ConflictError
    from circus.util import configure_logger

    configure_logger(logger, "info", "-", sys.argv[1])
    tornado = logging.getLogger("tornado.application")
    for command in ("arbiter_stop", "arbiter_start_watchers"):
        try:
            raise ConflictError(f"arbiter is already running {command} command")
        except ConflictError:
            tornado.exception("Exception in callback manage_watchers")
    try:
        raise ValueError("arbiter_stop mentioned by another error")
    except ValueError:
        tornado.exception("another callback failed")
    logger.info("api started")
    logger.debug("not at INFO")
""")


def test_circus_names_the_configuration() -> None:
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "circus.ini")
    assert "$(circus.env.BEACON_HOME)/app/core/circus-logging.json" == parser.get("circus", "loggerconfig")


def test_stop_conflicts_dropped_every_other_record_kept() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(CONFIG)], capture_output=True, text=True,
                            timeout=60, check=True, cwd=ROOT)
    assert "" == result.stdout
    lines = result.stderr.splitlines()
    assert "arbiter is already running arbiter_stop command" not in result.stderr
    assert "circus.exc.ConflictError: arbiter is already running arbiter_start_watchers command" in lines
    assert "ValueError: arbiter_stop mentioned by another error" in lines
    assert 2 == sum("tornado.application[" in line and "[ERROR]" in line for line in lines)
    started = [line for line in lines if line.endswith("[INFO] api started")]
    assert 1 == len(started) and started[0].split()[2].startswith("circus[")
    assert "not at INFO" not in result.stderr
