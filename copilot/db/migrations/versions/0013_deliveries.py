"""Deliveries: each approved action's way to the app (ready, claimed, delivered, failed, dead).

The action feed (`GET /v1/actions`) claims rows of the `outbox` route; push routes
(webhook, celery, plug-ins) move the same states from the executor's result. `due_at` is
when a row is next claimable (see copilot.db.tables.deliveries).

(Numbered 0013: an 0012 may land from another branch; the merge re-chains down_revision.)

Revision ID: 0013_deliveries
Revises: 0011_approval_docs
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_deliveries"
down_revision = "0012_principals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the deliveries table and the indexes the feed's claim and the pages read."""
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("approval_id", sa.String(32), nullable=True),
        sa.Column("subject_id", sa.String(200), nullable=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("route", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("receipt", sa.Text, nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("due_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["route", "due_at"])
    op.create_index("ix_deliveries_tenant_state", "deliveries", ["tenant", "state", "id"])
    op.create_index("ix_deliveries_approval", "deliveries", ["approval_id"])


def downgrade() -> None:
    """Drop the deliveries table."""
    op.drop_table("deliveries")
