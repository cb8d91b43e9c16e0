"""The learning wing: logged decisions with propensities, feedback, policy versions, evidence.

A policy version is one row holding its whole artifact and its hash: an insert commits or
does not, so a killed trainer never leaves a half-written version to be served.

(Numbered 0015: other branches may land 0014; the merge re-chains down_revision.)

Revision ID: 0015_learn
Revises: 0013_deliveries
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_learn"
down_revision = "0014_placements"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the four tables and the indexes the join, the window and the states read."""
    op.create_table(
        "learn_decisions",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("surface", sa.String(200), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.Float, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("candidates", sa.Text, nullable=False),
        sa.Column("chosen", sa.String(200), nullable=True),
        sa.Column("propensity", sa.Float, nullable=False),
        sa.Column("policy", sa.String(100), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("holdout", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("segment", sa.String(200), nullable=True),
        sa.Column("distribution", sa.Text, nullable=True),
        sa.Column("shadow_version", sa.String(64), nullable=True),
        sa.Column("shadow_pick", sa.String(200), nullable=True),
    )
    op.create_index("ix_learn_decisions_window", "learn_decisions",
                    ["tenant", "surface", "decided_at"])  # fmt: skip
    op.create_table(
        "learn_feedback",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("edit_distance", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
    )
    op.create_index("ix_learn_feedback_decision", "learn_feedback", ["tenant", "decision_id"])
    op.create_table(
        "learn_policies",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("surface", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("artifact", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("n_train", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_learn_policies_state", "learn_policies", ["tenant", "surface", "state"])
    op.create_table(
        "learn_evidence",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("surface", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_learn_evidence_version", "learn_evidence", ["tenant", "surface", "version"])


def downgrade() -> None:
    """Drop the learning wing's tables."""
    for name in ("learn_evidence", "learn_policies", "learn_feedback", "learn_decisions"):
        op.drop_table(name)
