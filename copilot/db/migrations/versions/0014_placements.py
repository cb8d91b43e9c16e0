"""Placements: the decision log and its exposure events (copilot.placements).

Revision ID: 0014_placements
Revises: 0013_deliveries
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_placements"
down_revision = "0013_deliveries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the decision log and the events table, with the indexes caps and reports read."""
    op.create_table(
        "placement_decisions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("placement", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.Float, nullable=False),
        sa.Column("chosen", sa.String(64), nullable=True),
        sa.Column("candidates", sa.Text, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("propensity", sa.Float, nullable=False),
        sa.Column("policy", sa.String(100), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("holdout", sa.Boolean, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("counted", sa.Boolean, nullable=False),
        sa.Column("segment", sa.String(100), nullable=True),
        sa.Column("explanation", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_pdec_subject", "placement_decisions", ["tenant", "subject_id", "decided_at"]
    )
    op.create_index(
        "ix_pdec_placement", "placement_decisions", ["tenant", "placement", "decided_at"]
    )
    op.create_table(
        "placement_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("decision_id", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("placement", sa.String(200), nullable=False),
        sa.Column("candidate", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("until", sa.Float, nullable=True),
        sa.UniqueConstraint("tenant", "decision_id", "event_id", name="uq_pevents_event"),
    )
    op.create_index("ix_pevents_subject", "placement_events", ["tenant", "subject_id", "at"])
    op.create_index("ix_pevents_decision", "placement_events", ["decision_id"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("placement_events")
    op.drop_table("placement_decisions")
