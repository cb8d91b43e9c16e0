"""Liveness: per run, how many attempts timed out in a step and when the sweeper last woke it.

`timeouts` counts attempts whose step ran past its limit; at `COPILOT_STEP_TIMEOUTS_MAX`
the run fails `run.step_timeout` instead of wandering between workers. `woken_at` is when
the sweeper last sent the run a wake-up, so it sends at most one per window instead of one
per sweep. A table of its own: the hot path of a run never reads or writes it.

Revision ID: 0017_liveness
Revises: 0013_deliveries
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_liveness"
down_revision = "0016_evidence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_liveness",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("timeouts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("woken_at", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("run_liveness")
