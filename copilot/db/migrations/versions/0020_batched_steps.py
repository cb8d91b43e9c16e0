"""Batched checkpoints: several steps of a run committed by one call.

`copilot_steps` is `copilot_step` (migration 0018) for a run of consecutive steps: one lease
compare-and-set on the first step's index that moves the run past the last, one row per
step, and every step's audit events in one append, in one transaction. A workflow declared
with `durability="batched"` holds its plain steps' checkpoints (no effects, proposals,
pause, action or model call) in the worker and commits them with the next checkpoint that
commits anyway (copilot.engine.checkpoint.Batch). The per-step arrays must all have one
element per step (checked here, before anything is written). p_to NULL: the batch only advances the run, committed without
waiting for the WAL flush, as an intermediate step is; 'completed' or 'waiting': the batch
ends with the run's completion or pause, committed durably.

The function is pinned to its indexes as migration 0019 pins the others.

`copilot_create` (the trigger) is redefined the same way. Migration 0019 planned it at
each call (`plan_cache_mode = force_custom_plan`) for its lookup by idempotency key, but
that setting holds for the functions it calls as well: every trigger replanned the whole
audit append (`audit_append`) too. Now only the keyed lookups are planned at each call
(`EXECUTE`, which plans with the key it is given), and the rest keeps its generic plans
on the indexes, as every other hot function does.

Revision ID: 0020_batched_steps
Revises: 0019_index_plans
Create Date: 2026-12-02
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0020_batched_steps"
down_revision = "0019_index_plans"
branch_labels = None
depends_on = None

# The audit event arguments every runtime function passes on to audit_append.
_EVENTS = importlib.import_module("copilot.db.migrations.versions.0018_runtime")._EVENTS

_STEPS = f"""
CREATE FUNCTION copilot_steps(
    p_rid text, p_owner text, p_idx int, p_now float8, p_expires float8, p_level text,
    p_reasons text, p_names text[], p_statuses text[], p_outputs text[], p_requests text[],
    p_attempt int, p_models text[], p_prompts text[], p_usages text[], p_started float8[],
    p_finished float8[], p_to text, p_result text, {_EVENTS}
) RETURNS SETOF runs LANGUAGE plpgsql
SET enable_seqscan = off SET enable_sort = off AS $$
DECLARE
    r runs;
    n int := coalesce(array_length(p_names, 1), 0);
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'copilot_steps: no steps' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(ARRAY[
                   cardinality(p_statuses), cardinality(p_outputs), cardinality(p_requests),
                   cardinality(p_models), cardinality(p_prompts), cardinality(p_usages),
                   cardinality(p_started), cardinality(p_finished)]) AS c
               WHERE c IS DISTINCT FROM n) THEN
        RAISE EXCEPTION 'copilot_steps: every step array must have % elements', n
            USING ERRCODE = '22023';
    END IF;
    IF p_to IS NULL THEN
        PERFORM set_config('synchronous_commit', 'off', true);
        UPDATE runs SET step_index = p_idx + n, updated_at = p_now, lease_expires_at = p_expires,
                        level = p_level, reasons = p_reasons
        WHERE id = p_rid AND lease_owner = p_owner AND state = 'running' AND step_index = p_idx
        RETURNING * INTO r;
    ELSE
        UPDATE runs SET step_index = p_idx + n, updated_at = p_now, state = p_to,
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
    SELECT p_rid, p_idx + u.o::int - 1, u.name, u.status, u.output, u.request, NULL, p_attempt,
           u.model, u.prompt, u.usage, u.started, u.finished
    FROM unnest(p_names, p_statuses, p_outputs, p_requests, p_models, p_prompts, p_usages,
                p_started, p_finished)
         WITH ORDINALITY AS u(name, status, output, request, model, prompt, usage, started,
                              finished, o);
    PERFORM audit_append(p_stream, p_genesis, 'try', p_commitments, p_bodies, p_salts,
                         p_payloads, p_recorded_at, p_actor_kind, p_actor_id, p_event_type,
                         p_run_id, p_subject_id, p_keys);
    RETURN NEXT r;
END $$;
"""


# copilot_create as migration 0018 made it, but for the keyed lookups, each an EXECUTE
# (planned for its key at each call; EXECUTE leaves FOUND alone, so the row is tested).
_KEYED = "EXECUTE 'SELECT * FROM runs WHERE tenant = $1 AND idempotency_key = $2' INTO r USING p_tenant, p_key;"
_CREATE = f"""
CREATE OR REPLACE FUNCTION copilot_create(
    p_id text, p_tenant text, p_workflow text, p_version text, p_subject text, p_inputs text,
    p_key text, p_triggered_by text, p_principal text, p_now float8, p_holdout boolean,
    p_consult boolean, {_EVENTS}
) RETURNS SETOF runs LANGUAGE plpgsql
SET enable_seqscan = off SET enable_sort = off AS $$
DECLARE
    r runs;
BEGIN
    IF p_consult AND EXISTS (SELECT 1 FROM subject_preferences
                             WHERE tenant = p_tenant AND subject_id = p_subject) THEN
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        {_KEYED}
        IF r.id IS NOT NULL THEN RETURN NEXT r; RETURN; END IF;
    END IF;
    INSERT INTO runs (id, tenant, workflow, version, subject_id, state, inputs, idempotency_key,
                      triggered_by, principal, created_at, updated_at, queued_at, attempts,
                      step_index, reasons, holdout)
    VALUES (p_id, p_tenant, p_workflow, p_version, p_subject, 'queued', p_inputs, p_key,
            p_triggered_by, p_principal, p_now, p_now, p_now, 0, 0, NULL, p_holdout)
    ON CONFLICT (tenant, idempotency_key) DO NOTHING
    RETURNING * INTO r;
    IF NOT FOUND THEN  -- a concurrent trigger with the same key won
        {_KEYED}
        RETURN NEXT r;
        RETURN;
    END IF;
    PERFORM audit_append(p_stream, p_genesis, 'try', p_commitments, p_bodies, p_salts,
                         p_payloads, p_recorded_at, p_actor_kind, p_actor_id, p_event_type,
                         p_run_id, p_subject_id, p_keys);
    RETURN NEXT r;
END $$;
"""
# What each function this migration defines is set to (tests/audit/test_plans.py reads it).
FUNCTIONS = {
    "copilot_steps": {"enable_seqscan": "off", "enable_sort": "off"},
    "copilot_create": {"enable_seqscan": "off", "enable_sort": "off"},
}


def upgrade() -> None:
    """Create copilot_steps and redefine copilot_create (PostgreSQL; SQLite batches rows of
    its one-statement path, and plans each statement at each call)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_STEPS)
        op.execute(_CREATE)


def downgrade() -> None:
    """Drop copilot_steps; copilot_create as migrations 0018 and 0019 left it."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS copilot_steps")
        before = importlib.import_module("copilot.db.migrations.versions.0018_runtime")
        op.execute(before._CREATE.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
        op.execute("ALTER FUNCTION copilot_create RESET ALL")
        op.execute(
            "ALTER FUNCTION copilot_create SET plan_cache_mode = force_custom_plan "
            "SET enable_sort = off"
        )
