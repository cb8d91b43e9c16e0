"""The approval gate: requests bound to payload versions, and reviewers' votes.

Revision ID: 0003_approvals
Revises: 0002_runtime
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_approvals"
down_revision = "0002_runtime"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("workflow", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("subject_id", sa.String(200), nullable=True),
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("risk", sa.String(8), nullable=False),
        sa.Column("risk_rank", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("required_n", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("policy_rule", sa.String(100), nullable=False),
        sa.Column("policy_version", sa.String(50), nullable=False),
        sa.Column("shadow", sa.Text(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("triggered_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("deadline", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claim_expires_at", sa.Float(), nullable=True),
        sa.Column("supersedes", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("execution_status", sa.String(16), nullable=True),
        sa.Column("execution", sa.Text(), nullable=True),
        sa.UniqueConstraint("tenant", "action_id", "version", name="uq_approval_version"),
    )
    op.create_index(
        "ix_approval_queue",
        "approval_requests",
        ["tenant", "status", "deadline", "risk_rank", "id"],
    )
    op.create_index("ix_approval_run", "approval_requests", ["run_id"])
    op.create_table(
        "approval_votes",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("reviewer", sa.String(200), primary_key=True),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("approval_votes")
    op.drop_table("approval_requests")
