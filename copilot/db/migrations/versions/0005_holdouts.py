"""Holdouts: whether a run's subject is held out of the workflow's proposals.

Revision ID: 0005_holdouts
Revises: 0004_subject_preferences
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_holdouts"
down_revision = "0004_subject_preferences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("holdout", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("holdout")
