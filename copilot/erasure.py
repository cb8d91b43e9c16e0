"""Erasure: forget a subject everywhere copilot keeps personal content, and prove the trail.

`erase_subject` first replaces the subject's preferences with a bare suppression record
(opted out of everything, basis `erased`: the next trigger is skipped rather than
re-personalized, and execution re-checks consent), then stops what is in flight (live
runs, then their pending and approved-but-unexecuted approvals are cancelled), then, in
one transaction: deletes the subject's signal values; redacts what its runs stored
(step outputs such as drafts and tone profiles, agent rounds, results, inputs beyond the
subject id), its approval payloads and explanations, its outbox payloads, its actions'
deliveries (the undelivered ones cancelled), its outcomes, its placement decisions'
features and explanations; and deletes its erasable audit payloads,
appending the tombstone. The audit chain committed to digests of those payloads, so it
still verifies; the tombstone says which entries were erased and by whom.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, select, update

from approvals import ApprovalConflictError
from approvals.rows import redact_subject
from audit import Actor
from copilot.db.tables import (
    deliveries,
    outbox,
    outcomes,
    run_steps,
    runs,
    signals,
    step_rounds,
)
from copilot.engine.runs import RunState
from copilot.errors import RunStateError
from copilot.governance.consent import Preferences
from copilot.placements.store import erase_in as erase_decisions

if TYPE_CHECKING:
    from copilot.runtime import Runtime

REDACTED = json.dumps({"erased": True})
_LIVE = (RunState.QUEUED.value, RunState.RUNNING.value, RunState.WAITING.value)


def erase_subject(
    runtime: Runtime, tenant: str, subject_id: str, *, actor: Actor
) -> dict[str, int]:
    """Erase `subject_id` of `tenant`; counts of what was cancelled, deleted and redacted."""
    # 1. Suppress first: from here on no worker executes or starts anything for the subject
    # (execution re-checks consent), even one that resumes a run in the meantime.
    runtime.consent.set(  # audited, like any change of preferences
        Preferences(tenant=tenant, subject_id=subject_id, opt_out_all=True, consent_basis="erased"),
        actor=actor,
    )
    counts = {"runs_cancelled": 0, "approvals_cancelled": 0}
    for run in runtime.runs.list_runs(tenant=tenant, subject_id=subject_id, limit=100_000):
        # 2. The run before its approvals: cancelling its last pending approval must not
        # resume a waiting run.
        if run.state.value in _LIVE:
            try:
                runtime.runs.cancel(run.id, actor=actor, reason="subject erased")
                counts["runs_cancelled"] += 1
            except RunStateError:  # finished meanwhile: nothing left to stop
                pass
        for req in runtime.gate.of_run(run.id):
            if req.status in ("pending", "approved") and req.execution_status != "done":
                try:
                    runtime.gate.cancel(req.id, reason="subject erased", actor=actor)
                    counts["approvals_cancelled"] += 1
                except ApprovalConflictError:  # executed or decided meanwhile
                    pass
    # 3. Forget, with the tombstone, in one transaction.
    with runtime.engine.begin() as conn:
        counts.update(_forget(conn, tenant, subject_id))
        counts["placement_decisions"] = erase_decisions(conn, tenant, subject_id)
        counts["audit_payloads"] = runtime.audit.erase_subject_in(conn, tenant, subject_id, actor)
    return counts


def _forget(conn: Connection, tenant: str, subject_id: str) -> dict[str, int]:
    mine = select(runs.c.id).where(runs.c.tenant == tenant, runs.c.subject_id == subject_id)
    counts = {
        "signals": conn.execute(
            delete(signals).where(signals.c.tenant == tenant, signals.c.subject_id == subject_id)
        ).rowcount,
        "step_outputs": conn.execute(
            update(run_steps)
            .where(run_steps.c.run_id.in_(mine))
            .values(output=REDACTED, request=None, decision=None)
        ).rowcount,
        "runs": conn.execute(
            update(runs)
            .where(runs.c.tenant == tenant, runs.c.subject_id == subject_id)
            .values(inputs=json.dumps({"subject_id": subject_id}), result=None)
        ).rowcount,
        "approvals": redact_subject(conn, tenant, subject_id, placeholder=REDACTED),
        "outcomes": conn.execute(
            delete(outcomes).where(outcomes.c.tenant == tenant, outcomes.c.subject_id == subject_id)
        ).rowcount,
        "agent_rounds": conn.execute(
            update(step_rounds).where(step_rounds.c.run_id.in_(mine)).values(state=REDACTED)
        ).rowcount,
        "outbox": conn.execute(
            update(outbox).where(outbox.c.run_id.in_(mine)).values(payload=REDACTED)
        ).rowcount,
        # An action on its way to the app for an erased subject must never arrive: what is
        # not delivered yet is cancelled, and every payload, error and receipt forgotten.
        "deliveries_cancelled": conn.execute(
            update(deliveries)
            .where(deliveries.c.tenant == tenant, deliveries.c.subject_id == subject_id)
            .where(deliveries.c.state.in_(["ready", "claimed", "failed", "dead"]))
            .values(state="cancelled", due_at=None, claim_token=None)
        ).rowcount,
        "deliveries": conn.execute(
            update(deliveries)
            .where(deliveries.c.tenant == tenant, deliveries.c.subject_id == subject_id)
            .values(payload=REDACTED, last_error=None, receipt=None)
        ).rowcount,
    }
    return counts
