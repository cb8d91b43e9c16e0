"""Guarded rollout: a seeded breach pauses the workflow in one review cycle; an admin resumes it.

On SQLite and PostgreSQL (the `engine` fixture), through the Runtime as production wires it.
"""

from __future__ import annotations

import json
import random
import uuid

import pytest
from sqlalchemy import Engine, insert

from approvals import ApprovalForbiddenError
from audit import Query
from copilot.db.tables import runs
from copilot.measure.holdouts import held_out
from copilot.measure.outcomes import record_outcomes
from copilot.measure.rollout import RESUME_KIND, paused_workflows
from tests.support.runtime import build_runtime

MODULES = "tests.support.flows,tests.support.stopping"
T0 = 1_700_000_000.0  # in the past: the guard counts exposures up to now


def seed_breach(rt: object, engine: Engine, subjects: int = 3000) -> None:
    """Runs of `stopping` assigned as the runtime assigns them; treated complain 6%, holdout 1%."""
    rng = random.Random(21)
    rows, events = [], []
    for i in range(subjects):
        subject, at = f"acct-{i:05d}", T0 + i
        held = held_out(subject, "stopping", 0.5, salt="copilot")
        rows.append({"id": uuid.uuid4().hex, "tenant": "acme", "workflow": "stopping",
                     "version": "1", "subject_id": subject, "state": "completed",
                     "inputs": json.dumps({}), "holdout": held, "triggered_by": "app:crm",
                     "created_at": at, "updated_at": at, "queued_at": at, "attempts": 1,
                     "step_index": 1, "level": "full"})  # fmt: skip
        if rng.random() < (0.01 if held else 0.06):
            events.append({"subject_id": subject, "name": "complained", "observed_at": at + 60})
    with engine.begin() as conn:
        conn.execute(insert(runs), rows)
    registry = rt.registry  # type: ignore[attr-defined]
    record_outcomes(engine, rt.audit, registry.outcomes, tenant="acme", events=events,  # type: ignore[attr-defined]
                    clock=lambda: T0 + 10 * 86400)  # fmt: skip


def treated_subject() -> str:
    return next(s for s in (f"new-{i}" for i in range(100))
                if not held_out(s, "stopping", 0.5, salt="copilot"))  # fmt: skip


def run_once(rt: object, subject: str) -> list[dict[str, object]]:
    runner = rt.runner  # type: ignore[attr-defined]
    run, _ = runner.trigger("stopping", subject, tenant="acme", triggered_by="app:crm")
    runner.run_inline(run.id)
    return [{"status": r.status, "rule": r.policy_rule} for r in rt.gate.of_run(run.id, "")]  # type: ignore[attr-defined]


def events(rt: object, kind: str) -> list[dict[str, object]]:
    rt.audit.settle("acme")  # type: ignore[attr-defined]  # chain appends queued behind a lock
    return [e.data for e in rt.audit.query("acme", Query(event_type=kind, limit=1000))]  # type: ignore[attr-defined]


def test_a_seeded_breach_pauses_the_workflow_and_only_an_admin_resumes_it(engine: Engine) -> None:
    rt = build_runtime(engine, workflow_modules=MODULES, woken=[])
    seed_breach(rt, engine)
    subject = treated_subject()
    # Before: the default policy auto-approves the workflow's low-risk note
    assert run_once(rt, subject) == [{"status": "approved", "rule": "low-risk-internal"}]
    # When one review cycle runs the stop rules
    paused = rt.check_stop_rules()
    # Then the confirmed breach (anytime-valid lower bound past +1 point) paused it
    assert [p["target"] for p in paused] == ["stopping"]
    assert paused[0]["low"] > 0.01
    assert paused_workflows(engine, "acme") == ["stopping"]
    assert rt.check_stop_rules() == []  # one breach, one pause
    [audited] = events(rt, "rollout.paused")
    assert audited["target"] == "stopping" and audited["rule"]["outcome"] == "complained"
    # And every run after the pause needs a person
    assert run_once(rt, subject) == [
        {"status": "pending", "rule": "low-risk-internal+rollout_paused"}
    ]
    # And resuming is an admin's decision at the gate: a reviewer may not
    [resume] = rt.gate.queue("acme", kind=RESUME_KIND)[0]
    assert resume.role == "admin" and resume.status == "pending"
    with pytest.raises(ApprovalForbiddenError):
        rt.gate.decide(resume.id, reviewer="maya", roles={"reviewer"}, decision="approve",
                       payload_hash=resume.payload_hash, tenant="acme")  # fmt: skip
    assert paused_workflows(engine, "acme") == ["stopping"]
    rt.gate.decide(resume.id, reviewer="root", roles={"admin"}, decision="approve",
                   payload_hash=resume.payload_hash, tenant="acme")  # fmt: skip
    assert paused_workflows(engine, "acme") == []
    [resumed] = events(rt, "rollout.resumed")
    assert resumed["approved_by"] == ["root"] and resumed["approval_id"] == resume.id
    # And after the resume the policy decides again
    assert run_once(rt, subject) == [{"status": "approved", "rule": "low-risk-internal"}]


def test_after_a_rejected_resume_the_next_cycle_files_a_new_request(engine: Engine) -> None:
    """A pause whose resume request was rejected would otherwise never be lifted."""
    rt = build_runtime(engine, workflow_modules=MODULES, woken=[])
    seed_breach(rt, engine)
    assert [p["target"] for p in rt.check_stop_rules()] == ["stopping"]
    [resume] = rt.gate.queue("acme", kind=RESUME_KIND)[0]
    rt.gate.decide(resume.id, reviewer="root", roles={"admin"}, decision="reject",
                   reason="not yet", payload_hash=resume.payload_hash, tenant="acme")  # fmt: skip
    assert paused_workflows(engine, "acme") == ["stopping"]
    rt.check_stop_rules()  # the next review cycle
    pending = [r for r in rt.gate.queue("acme", kind=RESUME_KIND)[0] if r.status == "pending"]
    assert len(pending) == 1 and pending[0].id != resume.id
    [refiled] = events(rt, "rollout.resume_refiled")
    assert refiled["previous_approval_id"] == resume.id
    assert events(rt, "rollout.paused") and len(events(rt, "rollout.paused")) == 1
    rt.check_stop_rules()  # and while that one is open, nothing more is filed
    assert len([r for r in rt.gate.queue("acme", kind=RESUME_KIND)[0] if r.status == "pending"]) == 1
