"""``beacon serve NAME``: the one place that maps a watcher's name to its application, above all of them.

Each HTTP process runs Granian embedded in this very process.

Why embedded: Granian's own process model forks workers, and measured under Circus a SIGKILL of its main
process leaves the workers serving the port as orphans, while a SIGKILL of one worker takes the whole
server down. Embedded, one OS process is one server; Circus runs as many as configured, each binding the
port with SO_REUSEPORT, and a killed process takes nothing with it but itself.

The realtime process is the exception: it serves its WebSockets with :mod:`app.realtime.server` in this
process the same way (one OS process, SO_REUSEPORT), because Granian's WebSockets cost ~150 KiB each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from litestar import Litestar

from app.core.logging import configure_logging
from app.core.settings import Settings, get_settings

logger = logging.getLogger("beacon.serve")


# Each process imports only its own application: the api must not carry the compute service's numpy and
# statsmodels, nor an ingest process the api's templates. Hence the imports inside the branches below.
def app_factory(name: str) -> Callable[[Settings], Litestar]:
    """``create_app(settings)`` of the Litestar process ``name``; raises ``ValueError`` for another name."""
    if name == "api":
        from app.main import create_app  # noqa: PLC0415 - one application per process (see above)
    elif name == "ingest":
        from services.ingest.app import create_app  # noqa: PLC0415 - one application per process
    elif name == "analytics":
        from services.analytics.app import create_app  # noqa: PLC0415 - one application per process
    elif name == "integrations":
        from services.integrations.app import create_app  # noqa: PLC0415 - one application per process
    elif name == "compute":
        from services.compute.app import create_app  # noqa: PLC0415 - one application per process
    else:
        raise ValueError(f"unknown process {name!r}")
    return create_app


PROCESS_NAMES = ("api", "realtime", "ingest", "analytics", "integrations", "compute")
LITESTAR_PROCESSES = tuple(name for name in PROCESS_NAMES if name != "realtime")
"""The processes that are a Litestar app under Granian (realtime: app/realtime/server.py)."""


async def _serve(server: Server) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


def serve(name: str, settings: Settings | None = None) -> None:
    """Serve process ``name`` on its configured port until SIGTERM."""
    settings = settings or get_settings()
    configure_logging(name, settings.log_level)
    if name == "realtime":
        # Not Granian: its WebSockets cost ~150 KiB each (see app/realtime/server.py).
        from app.realtime.app import run  # noqa: PLC0415 - one application per process (see app_factory)

        _run(run(settings))
        return
    app = app_factory(name)(settings)
    port = settings.server.ports[name]
    server = Server(
        app,
        address=settings.server.bind_host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        backlog=2048,
        log_enabled=True,
        log_level=LogLevels.warning,
        # Route Granian's records through our JSON handler on the root logger.
        log_dictconfig={
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {},
            "handlers": {},
            "loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True}},
        },
    )
    logger.info("serving", extra={"port": port, "host": settings.server.bind_host, "pid": os.getpid()})
    _run(_serve(server))


def _run(main: Coroutine[Any, Any, None]) -> None:
    uvloop.run(main)
