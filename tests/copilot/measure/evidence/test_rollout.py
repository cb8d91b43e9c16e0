"""Guarded rollout: a seeded breach pauses the workflow in one review cycle; an admin resumes it.

On SQLite and PostgreSQL (the `engine` fixture), through the Runtime as production wires it.
"""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest
from sqlalchemy import Engine, insert

from approvals import ApprovalForbiddenError
from audit import Query
from copilot.db.tables import runs
from copilot.measure.evidence.rules import Paused
from copilot.measure.holdouts import held_out
from copilot.measure.outcomes import record_outcomes
from copilot.measure.report.build import build_report
from copilot.measure.review.build import build_review
from copilot.measure.review.html import render_review
from copilot.measure.review.model import WeeklyReview
from copilot.measure.rollout import (
    RESUME_KIND,
    SRM_BLOCKED,
    Guard,
    paused_rollouts,
    paused_workflows,
)
from tests.support.runtime import build_runtime

MODULES = "tests.support.flows,tests.support.stopping"
T0 = 1_700_000_000.0  # in the past: the guard counts exposures up to now


def seed_breach(rt: object, engine: Engine, subjects: int = 3000, held_share: float = 0.5) -> None:
    """Runs of `stopping` assigned as the runtime assigns them (`held_share` other than the
    configured 0.5: a skewed split, as when one arm's runs are lost); treated complain 6%,
    holdout 1%."""
    rng = random.Random(21)
    rows, events = [], []
    for i in range(subjects):
        subject, at = f"acct-{i:05d}", T0 + i
        held = held_out(subject, "stopping", held_share, salt="copilot")
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
    assert [(p["action"], p["target"]) for p in paused] == [("paused", "stopping")]
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
    assert (
        len([r for r in rt.gate.queue("acme", kind=RESUME_KIND)[0] if r.status == "pending"]) == 1
    )


@pytest.mark.parametrize(("held_share", "acted"), [(0.35, False), (0.5, True)])
def test_the_guard_refuses_to_pause_on_a_comparison_with_a_sample_ratio_mismatch(
    engine: Engine, held_share: float, acted: bool
) -> None:
    """The same breach (treated complain 6%, holdout 1%): on a skewed split (35% held out of a
    configured 50%) the comparison proves nothing, so no pause, the refusal is audited and the
    report's blocking warning says why; on a fair split the guard pauses."""
    rt = build_runtime(engine, workflow_modules=MODULES, woken=[])
    seed_breach(rt, engine, held_share=held_share)
    [found] = rt.check_stop_rules()
    assert found["target"] == "stopping" and found["low"] > 0.01  # the breach is there either way
    report = build_report(engine, tenant="acme", outcomes=rt.registry.outcomes,
                          allocations=rt.allocations(), paused=paused_rollouts(engine, "acme"))  # fmt: skip
    mismatch = [w for w in report.warnings if w.code == "sample_ratio_mismatch"]
    if acted:
        assert found["action"] == "paused" and paused_workflows(engine, "acme") == ["stopping"]
        assert events(rt, "rollout.pause_refused") == [] and not mismatch
        assert [w.details["target"] for w in report.warnings if w.code == "rollout_paused"] == [
            "stopping"]  # fmt: skip
        return
    assert (found["action"], found["code"]) == ("refused", SRM_BLOCKED) == (
        "refused", "rollout.srm_blocked")  # fmt: skip
    assert found["srm_p"] < 0.001 and "sample-ratio" in found["message"]
    assert paused_workflows(engine, "acme") == [] and events(rt, "rollout.paused") == []
    assert rt.gate.queue("acme", kind=RESUME_KIND)[0] == []  # nothing for an admin to resume
    [refused] = events(rt, "rollout.pause_refused")
    assert refused["code"] == SRM_BLOCKED and refused["target"] == "stopping"
    [again] = rt.check_stop_rules()  # the next cycle refuses again, audited once a day
    assert again["action"] == "refused" and len(events(rt, "rollout.pause_refused")) == 1
    rt.guard.clock = lambda: time.time() + 86_400  # tomorrow: audited once more
    assert [r["action"] for r in rt.check_stop_rules()] == ["refused"]
    assert len(events(rt, "rollout.pause_refused")) == 2
    # The blocking warning is first on the report, and the policy still decides runs
    assert mismatch and report.warnings[0] == mismatch[0] and mismatch[0].details["blocking"]
    assert run_once(rt, treated_subject()) == [{"status": "approved", "rule": "low-risk-internal"}]


def test_paused_placements_and_learned_policies_are_banners_beside_paused_workflows(
    engine: Engine,
) -> None:
    rt = build_runtime(engine, workflow_modules=MODULES, woken=[])
    guard = Guard(engine, rt.audit, rt.gate)
    reason = {"rule": {"outcome": "complained", "max_increase": 0.005, "alpha": 0.05},
              "increase": 0.02, "low": 0.01, "high": 0.03}  # fmt: skip
    for kind, target in (("workflow", "stopping"), ("placement", "home"), ("policy", "home")):
        assert guard.pause("acme", kind, target, reason) is not None
    everything = [Paused(kind="placement", target="home"), Paused(kind="policy", target="home"),
                  Paused(kind="workflow", target="stopping")]  # fmt: skip
    assert paused_rollouts(engine, "acme") == everything
    assert paused_workflows(engine, "acme") == ["stopping"]
    # The review names all three, in its JSON, its headline and its banners
    review = build_review(engine, tenant="acme", outcomes=rt.registry.outcomes, sources=[],
                          paused=paused_rollouts(engine, "acme"))  # fmt: skip
    assert review.paused == everything
    assert "paused: placement home, policy home, stopping" in review.headline
    page = render_review(review)
    for p in everything:
        assert f'data-banner="paused" data-paused="{p.kind}:{p.target}"' in page
    assert "Placement home is paused by a stop rule: it serves control" in page
    assert "The learned policy of home is paused by a stop rule: the rules serve" in page
    # And so does the report (the inbox reads the same list)
    report = build_report(engine, tenant="acme", outcomes=rt.registry.outcomes,
                          paused=paused_rollouts(engine, "acme"))  # fmt: skip
    banners = [w.details for w in report.warnings if w.code == "rollout_paused"]
    assert [(d["kind"], d["target"]) for d in banners] == [(p.kind, p.target) for p in everything]
    # A review stored when only workflows paused (names alone) still reads
    old = review.model_dump(mode="json") | {"paused": ["stopping"]}
    assert WeeklyReview.model_validate(old).paused == [Paused(kind="workflow", target="stopping")]
