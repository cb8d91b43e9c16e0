"""Proactive triggers: the debounce state of event triggers per subject.

Revision ID: 0008_triggers
Revises: 0007_step_rounds
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_triggers"
down_revision = "0007_step_rounds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trigger_state",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("trigger", sa.String(64), primary_key=True),
        sa.Column("subject_id", sa.String(200), primary_key=True),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("trigger_state")
