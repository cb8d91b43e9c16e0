"""The runtime at its floor: creating a run and checkpointing a step, each in one round trip.

`copilot_create` inserts a queued run with its `run.created` event; `copilot_step` commits
a step's checkpoint (lease check, step row, audit events) and, for the last step or a
pause, the run's transition with it. Both are called in autocommit mode, so the call is
the transaction: no BEGIN or COMMIT of their own on the wire (copilot.engine.fastpath).

Revision ID: 0018_runtime
Revises: 0013_deliveries
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0018_runtime"
down_revision = "0017_liveness"
branch_labels = None
depends_on = None

# The audit event arrays every function below passes on to audit_append (migration 0001).
_EVENTS = """
    p_stream text, p_genesis bytea, p_commitments bytea[], p_bodies bytea[], p_salts bytea[],
    p_payloads bytea[], p_recorded_at text[], p_actor_kind text[], p_actor_id text[],
    p_event_type text[], p_run_id text[], p_subject_id text[], p_keys text[]"""
_APPEND = """
    PERFORM audit_append(p_stream, p_genesis, 'try', p_commitments, p_bodies, p_salts,
                         p_payloads, p_recorded_at, p_actor_kind, p_actor_id, p_event_type,
                         p_run_id, p_subject_id, p_keys);"""

# A queued run and its `run.created` event, committed durably (others act on a trigger).
# The same idempotency key returns the run it made before (a concurrent twin's included).
# With p_consult set, a subject with stored preferences gets no row back and nothing is
# written: the caller reads the preferences (an opted-out subject's run is skipped) and
# takes the general path. Returns the run, or no row for that case.
_CREATE = f"""
CREATE FUNCTION copilot_create(
    p_id text, p_tenant text, p_workflow text, p_version text, p_subject text, p_inputs text,
    p_key text, p_triggered_by text, p_principal text, p_now float8, p_holdout boolean,
    p_consult boolean, {_EVENTS}
) RETURNS SETOF runs LANGUAGE plpgsql AS $$
DECLARE
    r runs;
BEGIN
    IF p_consult AND EXISTS (SELECT 1 FROM subject_preferences
                             WHERE tenant = p_tenant AND subject_id = p_subject) THEN
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT * INTO r FROM runs WHERE tenant = p_tenant AND idempotency_key = p_key;
        IF FOUND THEN RETURN NEXT r; RETURN; END IF;
    END IF;
    INSERT INTO runs (id, tenant, workflow, version, subject_id, state, inputs, idempotency_key,
                      triggered_by, principal, created_at, updated_at, queued_at, attempts,
                      step_index, reasons, holdout)
    VALUES (p_id, p_tenant, p_workflow, p_version, p_subject, 'queued', p_inputs, p_key,
            p_triggered_by, p_principal, p_now, p_now, p_now, 0, 0, NULL, p_holdout)
    ON CONFLICT (tenant, idempotency_key) DO NOTHING
    RETURNING * INTO r;
    IF NOT FOUND THEN  -- a concurrent trigger with the same key won
        SELECT * INTO r FROM runs WHERE tenant = p_tenant AND idempotency_key = p_key;
        RETURN NEXT r;
        RETURN;
    END IF;
    {_APPEND}
    RETURN NEXT r;
END $$;
"""

# A step's checkpoint: the lease compare-and-set (ours, running, on this step), the step
# row and the audit events (sealed by the client), in one call. p_to NULL: an intermediate
# checkpoint, renewing the lease, committed without waiting for the WAL flush (a crash
# that loses it only means the step runs again). p_to 'completed' or 'waiting': the last
# step or a pause, the run's transition in the same transaction, committed durably.
# Returns the run as it now stands, or no row when the lease was lost (nothing written).
_STEP = f"""
CREATE FUNCTION copilot_step(
    p_rid text, p_owner text, p_idx int, p_now float8, p_expires float8, p_level text,
    p_reasons text, p_name text, p_status text, p_output text, p_request text, p_attempt int,
    p_model text, p_prompt text, p_usage text, p_started float8, p_to text, p_result text,
    {_EVENTS}
) RETURNS SETOF runs LANGUAGE plpgsql AS $$
DECLARE
    r runs;
BEGIN
    IF p_to IS NULL THEN
        PERFORM set_config('synchronous_commit', 'off', true);
        UPDATE runs SET step_index = p_idx + 1, updated_at = p_now, lease_expires_at = p_expires,
                        level = p_level, reasons = p_reasons
        WHERE id = p_rid AND lease_owner = p_owner AND state = 'running' AND step_index = p_idx
        RETURNING * INTO r;
    ELSE
        UPDATE runs SET step_index = p_idx + 1, updated_at = p_now, state = p_to,
                        lease_owner = NULL, lease_expires_at = NULL, level = p_level,
                        reasons = p_reasons, result = coalesce(p_result, result)
        WHERE id = p_rid AND lease_owner = p_owner AND state = 'running' AND step_index = p_idx
        RETURNING * INTO r;
    END IF;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO run_steps (run_id, idx, name, status, output, request, decision, attempt, model,
                           prompt_version, usage, started_at, finished_at)
    VALUES (p_rid, p_idx, p_name, p_status, p_output, p_request, NULL, p_attempt, p_model,
            p_prompt, p_usage, p_started, p_now);
    {_APPEND}
    RETURN NEXT r;
END $$;
"""


def upgrade() -> None:
    """Create the two functions (PostgreSQL; SQLite runs the same transactions client-side)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE)
        op.execute(_STEP)


def downgrade() -> None:
    """Drop them."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS copilot_step")
        op.execute("DROP FUNCTION IF EXISTS copilot_create")
