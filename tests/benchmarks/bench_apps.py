"""The two baselines of the ingest benchmark, served like every Beacon process (Granian embedded, ASGI).

- ``hello``: a Litestar route answering 200 "ok": the ceiling of the Nginx → Granian → Litestar path.
- ``hello-rsgi``: the same answer from a bare RSGI callable (no framework, no ASGI): for context only, the
  ceiling of Nginx → Granian itself.
- ``baseline``: the Events API done the Umami way: the same parsing and enrichment as ingest, then one
  SQLAlchemy insert and commit per request (same framework, same driver, psycopg 3, and the same kind of
  Litestar ASGI route handler as ingest, so that only the write path differs).

Run: ``python -m tests.benchmarks.bench_apps hello|hello-rsgi|baseline`` with ``BENCH_PORT`` and the BEACON_* variables.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from litestar import Litestar, asgi, get
from litestar.types import Receive, Scope, Send
from sqlalchemy import text

from app.core.db import make_async_engine, sessionmaker_for
from app.core.errors import EXCEPTION_HANDLERS
from app.core.settings import get_settings
from services.ingest import enrich, logic
from services.ingest.routes import ACCEPTED_BODY, accepted_start, header, read_body

INSERT = text(
    "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, referrer, "
    "referrer_source, channel, utm_source, utm_medium, utm_campaign, utm_term, utm_content, browser, "
    "browser_version, os, os_version, device, country, interactive, revenue_amount, revenue_currency, props) "
    "VALUES (:site_id, :ts, :name, :visitor, 0, :hostname, :pathname, :referrer, :referrer_source, :channel, "
    ":utm_source, :utm_medium, :utm_campaign, :utm_term, :utm_content, :browser, :browser_version, :os, "
    ":os_version, :device, :country, :interactive, :amount, :currency, CAST(:props AS jsonb))"
)


def hello_app() -> Litestar:
    @get("/hello", media_type="text/plain")
    async def hello() -> str:
        return "ok"

    return Litestar([hello], debug=False, logging_config=None, openapi_config=None)


async def hello_rsgi(scope: Any, proto: Any) -> None:
    proto.response_bytes(200, [("content-type", "text/plain; charset=utf-8")], b"ok")


def baseline_app() -> Litestar:
    settings = get_settings()
    engine = make_async_engine(settings.database, application_name="bench-baseline")
    sessions = sessionmaker_for(engine)
    countries = enrich.Countries()
    sites: dict[str, int] = {}
    salt = b"s" * 32

    @asgi("/api/event", copy_scope=False)
    async def event(scope: Scope, receive: Receive, send: Send) -> None:
        await store(scope, await read_body(receive))
        await send(accepted_start())
        await send(ACCEPTED_BODY)

    async def store(scope: Scope, body: bytes) -> None:
        parsed = logic.parse_event(body)
        user_agent = header(scope, b"user-agent") or ""
        agent = enrich.client(user_agent)
        if agent.bot:
            return
        client = scope.get("client")
        ip = logic.client_ip(header(scope, b"x-forwarded-for"), client[0] if client else None)
        source = enrich.source(parsed.referrer, parsed.hostname, parsed.query)
        async with sessions.begin() as session:
            missing = [d for d in parsed.domains if d not in sites]
            if missing:
                rows = await session.execute(text("SELECT domain, id FROM sites WHERE domain = ANY(:d)"),
                                             {"d": missing})
                sites.update({str(domain): int(site_id) for domain, site_id in rows})
            for domain in parsed.domains:
                if domain not in sites:
                    continue
                await session.execute(INSERT, {
                    "site_id": sites[domain], "ts": datetime.now(UTC), "name": parsed.name,
                    "visitor": logic.visitor_id(salt, domain, ip, user_agent), "hostname": parsed.hostname,
                    "pathname": parsed.pathname, "referrer": source.referrer,
                    "referrer_source": source.referrer_source, "channel": source.channel,
                    "utm_source": source.utm_source, "utm_medium": source.utm_medium,
                    "utm_campaign": source.utm_campaign, "utm_term": source.utm_term,
                    "utm_content": source.utm_content, "browser": agent.browser,
                    "browser_version": agent.browser_version, "os": agent.os, "os_version": agent.os_version,
                    "device": agent.device, "country": countries.country(ip), "interactive": parsed.interactive,
                    "amount": parsed.revenue_amount, "currency": parsed.revenue_currency,
                    "props": json.dumps(parsed.props)})

    return Litestar([event], debug=False, logging_config=None, openapi_config=None,
                    exception_handlers=EXCEPTION_HANDLERS, on_shutdown=[engine.dispose])


async def _serve(server: Server) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


def main(name: str) -> None:
    app: Any = {"hello": hello_app, "baseline": baseline_app}[name]() if name != "hello-rsgi" else hello_rsgi
    interface = Interfaces.RSGI if name == "hello-rsgi" else Interfaces.ASGI
    server = Server(app, address="127.0.0.1", port=int(os.environ["BENCH_PORT"]), interface=interface,
                    http=HTTPModes.http1, backlog=2048, log_enabled=False, log_level=LogLevels.warning)

    uvloop.run(_serve(server))


if __name__ == "__main__":
    main(sys.argv[1])
