"""A stack of its own for the integrations tests: api, integrations service, a worker and the scheduler as real
subprocesses on a database and Redis db of their own, a real HTTP receiver on loopback, API keys and sites.

Its own database and Redis db keep its scheduler (which holds the one scheduler lock) and its worker away from
the other tests' queues."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from app.devstack import Postgres, Redis, free_port
from app.mailsink import MailSink
from tests.support.integrations import Receiver, Site, Stack, make_site, start_stack


@pytest.fixture(scope="package")
def mail_sink(state_dir: Path) -> Iterator[MailSink]:
    """A real SMTP server on loopback (aiosmtpd) keeping what it receives as files."""
    sink = MailSink(state_dir / "integrations-mail", free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="package")
def stack(postgres: Postgres, redis_server: Redis, state_dir: Path, mail_sink: MailSink) -> Iterator[Stack]:
    """api, integrations, analytics, compute, worker and scheduler, delivering webhooks to loopback
    (BEACON_WEBHOOKS_ALLOW_PRIVATE=1) and mail to :func:`mail_sink`."""
    running = start_stack(postgres, redis_server, state_dir / "integrations", "beacon_integrations", 5,
                          {"BEACON_WEBHOOKS_ALLOW_PRIVATE": "1", "BEACON_WEBHOOKS_GOAL_INTERVAL": "3",
                           "BEACON_SMTP_URL": mail_sink.url},
                          ("api", "integrations", "analytics", "compute", "worker", "scheduler"))
    yield running
    running.stop()
    running.engine.dispose()


@pytest.fixture(scope="package")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def site(stack: Stack, receiver: Receiver, mail_sink: MailSink) -> Iterator[Site]:
    made = make_site(stack)
    yield made
    receiver.clear()
    for message in mail_sink.messages():
        message.unlink()
    for attempt in range(10):  # the running worker may hold locks the TRUNCATE waits for (a deadlock)
        try:
            stack.sql("TRUNCATE users, sites, webhook_endpoints, emails, events, sessions, goals, alert_rules "
                      "RESTART IDENTITY CASCADE")
            break
        except OperationalError:
            if attempt == 9:
                raise
            time.sleep(0.5)
