"""Multi-round steps: each committed round's progress (an agent's turns and tool results).

Revision ID: 0007_step_rounds
Revises: 0006_outcomes
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_step_rounds"
down_revision = "0006_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_rounds",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("round", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("proposed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("step_rounds")
