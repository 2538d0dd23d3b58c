"""The integrations models describe exactly what migrations 0009 and 0011 create."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.core.db import Base
from services.integrations import models
from tests.support.integrations import Stack

TABLES = {"webhook_endpoints", "webhook_deliveries", "webhook_attempts", "webhook_site_cursors", "alert_rules",
          "alert_firings", "report_subscriptions", "emails", "site_imports",
          "site_import_events", *models.IMPORTED_TABLES}


def test_models_match_the_migration(stack: Stack) -> None:
    assert models.WebhookEndpoint.__tablename__ in Base.metadata.tables

    def ours(obj: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
        table = obj if kind == "table" else getattr(obj, "table", None)
        return getattr(table, "name", name) in TABLES

    with stack.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": ours, "compare_type": True,
                                                         "compare_server_default": False})
        assert [] == compare_metadata(context, Base.metadata)
