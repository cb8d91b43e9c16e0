"""The workflow runtime: runs, step checkpoints, signals, the outbox and execution receipts.

Revision ID: 0002_runtime
Revises: 0001_audit_trail
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_runtime"
down_revision = "0001_audit_trail"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("workflow", sa.String(100), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("triggered_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("queued_at", sa.Float(), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("step_index", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("level", sa.String(8), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("tenant", "idempotency_key", name="uq_runs_idempotency"),
    )
    op.create_index("ix_runs_state_queued", "runs", ["state", "queued_at"])
    op.create_index("ix_runs_state_lease", "runs", ["state", "lease_expires_at"])
    op.create_index("ix_runs_subject", "runs", ["tenant", "subject_id"])
    op.create_index("ix_runs_created", "runs", ["tenant", "created_at"])
    op.create_table(
        "run_steps",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("prompt_version", sa.String(50), nullable=True),
        sa.Column("usage", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "signals",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("observed_at", sa.Float(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
    )
    op.create_index("ix_signals_lookup", "signals", ["tenant", "subject_id", "name", "observed_at"])
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
    )
    op.create_table(
        "receipts",
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("executor", sa.String(50), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_CHECKPOINT)
        op.execute(_PG_ACQUIRE)


# Taking a run's lease in one round trip: a compare-and-set on the state and attempt the
# client read (so the audit events it sealed describe exactly this transition), the level
# when first assessed, and the events. Committed without waiting for the WAL flush: a
# database crash that loses it leaves the run queued, to be taken again.
_PG_ACQUIRE = """
CREATE FUNCTION copilot_acquire(
    p_rid text, p_owner text, p_now float8, p_expires float8, p_state text, p_attempts int,
    p_level text, p_reasons text,
    p_stream text, p_genesis bytea, p_bodies bytea[], p_recorded_at text[],
    p_actor_kind text[], p_actor_id text[], p_event_type text[], p_subject text
) RETURNS SETOF runs LANGUAGE plpgsql AS $$
DECLARE
    r runs;
    n int := coalesce(array_length(p_bodies, 1), 0);
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE runs SET state = 'running', lease_owner = p_owner, lease_expires_at = p_expires,
                    attempts = attempts + 1, updated_at = p_now,
                    level = coalesce(p_level, level), reasons = coalesce(p_reasons, reasons)
    WHERE id = p_rid AND state = p_state AND attempts = p_attempts
      AND (state = 'queued'
           OR (state = 'running' AND (lease_expires_at < p_now OR lease_owner = p_owner)))
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM audit_append(
        p_stream, p_genesis, 'try', array_fill(NULL::bytea, ARRAY[n]), p_bodies,
        array_fill(NULL::bytea, ARRAY[n]), array_fill(NULL::bytea, ARRAY[n]), p_recorded_at,
        p_actor_kind, p_actor_id, p_event_type, array_fill(p_rid, ARRAY[n]),
        array_fill(p_subject, ARRAY[n]), array_fill(NULL::text, ARRAY[n]));
    RETURN NEXT r;
END $$;
"""


# An intermediate step checkpoint in one round trip: the lease compare-and-set, the step
# row and its audit event (sealed by the client), committed without waiting for the WAL
# flush (losing it in a database crash only means the step runs again). Returns false
# when the lease was lost.
_PG_CHECKPOINT = """
CREATE FUNCTION copilot_checkpoint(
    p_rid text, p_owner text, p_idx int, p_now float8, p_expires float8, p_level text,
    p_reasons text, p_name text, p_output text, p_attempt int, p_model text, p_prompt text,
    p_usage text, p_started float8,
    p_stream text, p_genesis bytea, p_commitment bytea, p_body bytea, p_recorded_at text,
    p_actor_kind text, p_actor_id text, p_subject text
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE runs SET step_index = p_idx + 1, updated_at = p_now, lease_expires_at = p_expires,
                    level = p_level, reasons = p_reasons
    WHERE id = p_rid AND lease_owner = p_owner AND state = 'running' AND step_index = p_idx;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO run_steps (run_id, idx, name, status, output, request, decision, attempt, model,
                           prompt_version, usage, started_at, finished_at)
    VALUES (p_rid, p_idx, p_name, 'completed', p_output, NULL, NULL, p_attempt, p_model,
            p_prompt, p_usage, p_started, p_now);
    PERFORM audit_append_one(p_stream, p_genesis, 'try', p_commitment, p_body, NULL, NULL,
                             p_recorded_at, p_actor_kind, p_actor_id, 'step.completed', p_rid,
                             p_subject, NULL);
    RETURN true;
END $$;
"""


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS copilot_checkpoint")
        op.execute("DROP FUNCTION IF EXISTS copilot_acquire")
    for table in ("receipts", "outbox", "signals", "run_steps", "runs"):
        op.drop_table(table)
