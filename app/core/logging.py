"""Structured logging: one JSON object a line on stdout, which Circus writes to the watcher's log file."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
"""Set by Nginx on every proxied request (a valid incoming one passed through); carried by every service
call and Dramatiq message, logged on every line, shown in error pages and problem+json bodies."""

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
"""What Nginx passes through (nginx/beacon.conf.j2, ``map $http_x_request_id``); anything else is replaced."""

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("beacon_request_id", default=None)
"""The request id of the request or job this task or thread works for (``None`` outside one)."""


def valid_request_id(value: str | None) -> str | None:
    """``value`` if it is an acceptable request id (8-128 of ``A-Za-z0-9._:-``), else ``None``."""
    return value if value and _VALID_REQUEST_ID.fullmatch(value) else None


def new_request_id() -> str:
    """A fresh request id, shaped like Nginx's ``$request_id`` (32 hex digits)."""
    return secrets.token_hex(16)


def current_request_id() -> str | None:
    """The request id of the current request or job, if any."""
    return request_id_var.get()


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "proc": self.process_name,
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(process_name: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines come from Nginx; the servers' own are noise at INFO.
    logging.getLogger("_granian").setLevel(logging.WARNING)
    logging.getLogger("granian.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
