"""Outcome events: what happened to a subject after a run (replied, renewed, churned, ...).

Revision ID: 0006_outcomes
Revises: 0005_holdouts
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_outcomes"
down_revision = "0005_holdouts"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("action_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("observed_at", sa.Float(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
    )
    op.create_index("ix_outcomes_name", "outcomes", ["tenant", "name", "observed_at"])
    op.create_index("ix_outcomes_subject", "outcomes", ["tenant", "subject_id"])


def downgrade() -> None:
    op.drop_table("outcomes")
