"""A real SMTP server on loopback that keeps every message it receives as a file (``make run`` and the tests).

Built on ``aiosmtpd`` (a test and development dependency). Each message is written to
``<directory>/<unix ns>-<n>.eml`` exactly as received (RFC 5322, readable with any mail client or
``python -m email``); ``make run`` keeps them under ``var/mail/``.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _SaveToDirectory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{next(self.counter)}.eml"
        # Not *.eml until it is whole: pathlib's glob matches dot files too, and readers glob "*.eml".
        temporary = self.directory / f".{name}.part"
        temporary.write_bytes(envelope.original_content or envelope.content)
        temporary.rename(self.directory / name)  # readers never see half a message
        return "250 Message accepted for delivery"


class MailSink:
    """``start()`` serves SMTP on ``host:port`` in a thread; ``stop()`` ends it."""

    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.controller = Controller(_SaveToDirectory(directory), hostname=host, port=port)

    @property
    def url(self) -> str:
        """The ``BEACON_SMTP_URL`` that reaches this server."""
        return f"smtp://{self.controller.hostname}:{self.controller.port}"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Path]:
        """The messages received so far, oldest first."""
        return sorted(self.directory.glob("*.eml"), key=lambda path: tuple(int(p) for p in path.stem.split("-")))
