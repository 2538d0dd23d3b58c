"""Alembic environment: runs migrations on the connection ``beacon migrate`` hands over."""

from __future__ import annotations

from alembic import context

from app.core import models
from app.core.db import Base

_ = models  # the models register their tables on Base.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `beacon migrate`, which provides the database connection")

# One transaction per migration, so that a migration may build an index CONCURRENTLY outside of its own
# transaction (app.migrate.build_index_concurrently): alembic's autocommit_block needs a transaction it began.
if connection.in_transaction():
    connection.commit()
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                  transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
