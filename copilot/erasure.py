"""Erasure: forget a subject everywhere copilot keeps personal content, and prove the trail.

`erase_subject` first stops what is still in flight for the subject (live runs are
cancelled, pending approvals cancelled: nothing may execute for an erased subject),
then, in one transaction: deletes the subject's signal values; replaces its preferences
with a bare suppression record (opted out of everything, basis `erased`) so that the
next trigger is skipped rather than re-personalized; redacts what its runs stored
(step outputs such as drafts and tone profiles, agent rounds, results, inputs beyond the
subject id), its approval payloads and explanations, its outbox payloads, its outcomes; and deletes its erasable audit payloads,
appending the tombstone. The audit chain committed to digests of those payloads, so it
still verifies; the tombstone says which entries were erased and by whom.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, select, update

from approvals.tables import requests
from audit import Actor
from copilot.errors import RunStateError
from copilot.runs import RunState
from copilot.tables import (
    outbox,
    outcomes,
    run_steps,
    runs,
    signals,
    step_rounds,
    subject_preferences,
)

if TYPE_CHECKING:
    from copilot.runtime import Runtime

REDACTED = json.dumps({"erased": True})
_LIVE = (RunState.QUEUED.value, RunState.RUNNING.value, RunState.WAITING.value)


def erase_subject(
    runtime: Runtime, tenant: str, subject_id: str, *, actor: Actor
) -> dict[str, int]:
    """Erase `subject_id` of `tenant`; counts of what was cancelled, deleted and redacted."""
    counts = {"runs_cancelled": 0, "approvals_cancelled": 0}
    for run in runtime.runs.list_runs(tenant=tenant, subject_id=subject_id, limit=100_000):
        for req in runtime.gate.of_run(run.id):
            if req.status == "pending":
                runtime.gate.cancel(req.id, reason="subject erased", actor=actor)
                counts["approvals_cancelled"] += 1
        if run.state.value in _LIVE:
            try:
                runtime.runs.cancel(run.id, actor=actor, reason="subject erased")
                counts["runs_cancelled"] += 1
            except RunStateError:  # finished meanwhile: nothing left to stop
                pass
    now = runtime.runs.clock()
    with runtime.engine.begin() as conn:
        counts.update(_forget(conn, tenant, subject_id, now))
        counts["audit_payloads"] = runtime.audit.erase_subject_in(conn, tenant, subject_id, actor)
    return counts


def _forget(conn: Connection, tenant: str, subject_id: str, now: float) -> dict[str, int]:
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
        "approvals": conn.execute(
            update(requests)
            .where(requests.c.tenant == tenant, requests.c.subject_id == subject_id)
            .values(payload=REDACTED, explanation=None)
        ).rowcount,
        "outcomes": conn.execute(
            delete(outcomes).where(outcomes.c.tenant == tenant, outcomes.c.subject_id == subject_id)
        ).rowcount,
        "agent_rounds": conn.execute(
            update(step_rounds).where(step_rounds.c.run_id.in_(mine)).values(state=REDACTED)
        ).rowcount,
        "outbox": conn.execute(
            update(outbox).where(outbox.c.run_id.in_(mine)).values(payload=REDACTED)
        ).rowcount,
    }
    conn.execute(
        delete(subject_preferences).where(
            subject_preferences.c.tenant == tenant, subject_preferences.c.subject_id == subject_id
        )
    )
    conn.execute(
        subject_preferences.insert().values(
            tenant=tenant,
            subject_id=subject_id,
            opt_out_all=True,
            opt_out_workflows="[]",
            snooze_until=None,
            consent_basis="erased",
            updated_at=now,
        )
    )
    return counts
