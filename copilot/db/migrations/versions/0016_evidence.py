"""Guarded rollouts' pauses and the stored weekly reviews.

Revision ID: 0016_evidence
Revises: 0013_deliveries
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_evidence"
down_revision = "0015_learn"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create rollout_pauses and reviews."""
    op.create_table(
        "rollout_pauses",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("target", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("paused_at", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("resume_approval_id", sa.String(32), nullable=True),
        sa.Column("resumed_at", sa.Float, nullable=True),
        sa.Column("resumed_by", sa.String(200), nullable=True),
    )
    op.create_table(
        "reviews",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("week", sa.String(10), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("reviews")
    op.drop_table("rollout_pauses")
