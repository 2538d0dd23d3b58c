"""Alembic environment: runs migrations on the connection ``beacon migrate`` hands over."""

from __future__ import annotations

from alembic import context

from app.core import models
from app.core.db import Base

_ = models  # the models register their tables on Base.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `beacon migrate`, which provides the database connection")

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
