"""Settings: read from BEACON_* variables, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import ConfigError
from app.core.settings import load_settings
from tests.support.settings import BASE


def test_defaults_follow_the_design() -> None:
    """Ports default to the design's and every service URL is on loopback."""
    settings = load_settings(BASE)
    assert {"api": 9001, "realtime": 6001, "ingest": 8001, "analytics": 8002, "integrations": 8003,
            "compute": 8004} == dict(settings.server.ports)
    assert "http://127.0.0.1:8002" == settings.server.service_urls["analytics"]
    assert "127.0.0.1" == settings.server.bind_host


def test_database_url_uses_psycopg3() -> None:
    """A plain postgresql:// URL is driven by psycopg 3; libpq tools get the plain form back."""
    settings = load_settings(BASE)
    assert settings.database.url.startswith("postgresql+psycopg://")
    assert "postgresql://u:p@127.0.0.1:5432/beacon" == settings.database.libpq_url


@pytest.mark.parametrize("missing", [
    pytest.param("BEACON_DATABASE_URL", id="database"),
    pytest.param("BEACON_REDIS_URL", id="redis"),
    pytest.param("BEACON_SECRET_KEY", id="secret"),
    pytest.param("BEACON_INTERNAL_TOKEN", id="token"),
])
def test_missing_required_value_names_the_variable(missing: str) -> None:
    """Start-up stops with a message naming the missing variable."""
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


@pytest.mark.parametrize(("name", "value", "message"), [
    pytest.param("BEACON_API_PORT", "http", "must be an integer", id="port-not-int"),
    pytest.param("BEACON_API_PORT", "70000", "between 1 and 65535", id="port-range"),
    pytest.param("BEACON_DATABASE_URL", "mysql://x@y/z", "postgresql", id="not-postgres"),
    pytest.param("BEACON_ENV", "staging", "production or development", id="env"),
    pytest.param("BEACON_SECRET_KEY", "short", "at least 32", id="weak-secret"),
    pytest.param("BEACON_INGEST_BATCH_SIZE", "many", "BEACON_INGEST_BATCH_SIZE must be an integer", id="ingest-int"),
    pytest.param("BEACON_INGEST_BATCH_WAIT_MS", "-1", "must not be negative", id="ingest-negative"),
    pytest.param("BEACON_INGEST_HONOUR_FORWARDED_FOR", "maybe", "BEACON_INGEST_HONOUR_FORWARDED_FOR must be 1 or 0",
                 id="ingest-switch"),
    pytest.param("BEACON_REDIS_PREFIX", "my app:", "no spaces", id="redis-prefix"),
])
def test_invalid_values_are_rejected(name: str, value: str, message: str) -> None:
    """Invalid values stop start-up with a message that says what is wrong."""
    with pytest.raises(ConfigError, match=message):
        load_settings({**BASE, name: value})


def test_ingest_tuning_is_read_with_the_other_settings() -> None:
    """``BEACON_INGEST_*`` land in ``settings.ingest`` with their types; unset ones keep the defaults."""
    settings = load_settings({**BASE, "BEACON_INGEST_BATCH_WAIT_MS": "2.5", "BEACON_INGEST_RATE_PER_IP": "0"})
    assert 2.5 == settings.ingest.batch_wait_ms
    assert 0 == settings.ingest.rate_per_ip
    assert 1000 == settings.ingest.batch_size


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param(None, True, id="default-on"), pytest.param("0", False, id="zero"),
    pytest.param("false", False, id="false"), pytest.param("1", True, id="one"), pytest.param("yes", True, id="yes"),
])
def test_forwarded_for_switch(value: str | None, expected: bool) -> None:
    """``BEACON_INGEST_HONOUR_FORWARDED_FOR`` is on unless set to 0/false/no/off."""
    extra = {} if value is None else {"BEACON_INGEST_HONOUR_FORWARDED_FOR": value}
    assert expected is load_settings({**BASE, **extra}).ingest.honour_forwarded_for


def test_env_file_fills_in_and_real_variables_win(tmp_path: Path) -> None:
    """BEACON_ENV_FILE supplies values; the real environment overrides them."""
    env_file = tmp_path / "beacon.env"
    env_file.write_text('# comment\nBEACON_API_PORT=9101\nBEACON_BASE_URL="https://stats.example.com/"\n'
                        "BEACON_COMPUTE_PORT=9104\n")
    settings = load_settings({**BASE, "BEACON_ENV_FILE": str(env_file), "BEACON_COMPUTE_PORT": "9204"})
    assert 9101 == settings.server.ports["api"]
    assert 9204 == settings.server.ports["compute"]
    assert "https://stats.example.com" == settings.server.base_url


def test_unreadable_env_file_is_a_clear_error(tmp_path: Path) -> None:
    """A BEACON_ENV_FILE that cannot be read is named in the error."""
    with pytest.raises(ConfigError, match="cannot read BEACON_ENV_FILE"):
        load_settings({**BASE, "BEACON_ENV_FILE": str(tmp_path / "missing.env")})
