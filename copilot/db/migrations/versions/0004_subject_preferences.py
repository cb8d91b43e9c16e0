"""Subject controls: opt-out (all workflows or some), snooze, consent basis.

Revision ID: 0004_subject_preferences
Revises: 0003_approvals
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_subject_preferences"
down_revision = "0003_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_preferences",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("subject_id", sa.String(200), primary_key=True),
        sa.Column("opt_out_all", sa.Boolean(), nullable=False),
        sa.Column("opt_out_workflows", sa.Text(), nullable=False),
        sa.Column("snooze_until", sa.Float(), nullable=True),
        sa.Column("consent_basis", sa.String(50), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("subject_preferences")
