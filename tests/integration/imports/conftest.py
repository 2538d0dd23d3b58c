"""Imports against a database and Redis db of their own (``beacon_imports``, db 7), so the worker these tests
start never takes another area's jobs; the importer itself runs in-process where no worker is needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.db import make_engine
from app.core.settings import DEFAULT_PORTS, load_settings
from app.devstack import Postgres, Redis, free_port
from app.migrate import migrate
from tests.support.google import Google, serve_google
from tests.support.imports import Imports, Site
from tests.support.servers import make_environment


@pytest.fixture(scope="package")
def imports(postgres: Postgres, redis_server: Redis, state_dir: Path) -> Iterator[Imports]:
    state = state_dir / "imports"
    environment = make_environment(postgres, redis_server, state, "beacon_imports", redis_db=7,
                                   ports={name: free_port() for name in DEFAULT_PORTS})
    environment.update({"BEACON_IMPORT_BATCH_ROWS": "50", "BEACON_IMPORT_LEASE": "2", "BEACON_WORKER_THREADS": "2"})
    settings = load_settings(environment)
    migrate(settings)
    engine = make_engine(settings.database)
    yield Imports(environment, settings, engine, state)
    engine.dispose()


@pytest.fixture
def site(imports: Imports) -> Iterator[Site]:
    """A site in UTC with an owner; everything imported is removed afterwards."""
    owner = imports.sql("INSERT INTO users (email, password_hash) VALUES ('owner@imports.example', 'x') "
                        "RETURNING id")[0][0]
    site_id = imports.sql("INSERT INTO sites (domain) VALUES ('imports.example') RETURNING id")[0][0]
    imports.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, 'owner')", s=site_id, u=owner)
    yield Site(site_id, "imports.example", owner)
    imports.sql("TRUNCATE site_imports, sites, users RESTART IDENTITY CASCADE")


@pytest.fixture
def google() -> Iterator[Google]:
    """A loopback server in Google's place (OAuth token endpoint and the GA4 Data API)."""
    with serve_google() as server:
        yield server
