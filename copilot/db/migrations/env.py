"""Alembic environment: runs on the connection copilot hands it (see copilot.db.upgrade)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - copilot always passes one
    raise RuntimeError("run migrations with `copilot db upgrade`")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
