"""Proposals through the gate inside runs: wait, decide, resume, execute exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, select

from audit import Trail
from copilot import Again, StepContext, Workflow
from copilot.db.tables import outbox
from copilot.engine.executor import Action, Receipt
from copilot.engine.gating import action_id
from copilot.engine.runner import Runner
from copilot.engine.runs import RunState
from tests.support import flows
from tests.support.runtime import age_lease

REVIEWERS = frozenset({"reviewer"})


def outbox_rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (r.kind, r.idempotency_key) for r in conn.execute(select(outbox).order_by(outbox.c.id))
        ]


def waiting_run(runner: Runner) -> Any:
    run, _ = runner.trigger("proposing", "acct-1", tenant="acme", triggered_by="app:crm")
    waited = runner.run_inline(run.id)
    assert waited.state == RunState.WAITING
    assert runner.gate is not None
    page, _ = runner.gate.queue("acme")
    assert [r.kind for r in page] == ["email_customer"]  # the note was auto-approved by policy
    return run, page[0]


def test_approve_resumes_the_run_and_executes_each_approved_action_once(
    runner: Runner, engine: Engine
) -> None:
    run, email = waiting_run(runner)
    assert runner.gate is not None
    runner.gate.decide(
        email.id,
        reviewer="maya",
        roles=REVIEWERS,
        decision="approve",
        payload_hash=email.payload_hash,
    )
    assert runner.store.get(run.id).state == RunState.QUEUED  # queued in the decision's transaction
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert done.result is not None
    assert [(o["kind"], o["status"], o["executed"]) for o in done.result["outcomes"]] == [
        ("post_note", "approved", True),
        ("email_customer", "approved", True),
    ]
    assert [k for k, _ in outbox_rows(engine)] == ["post_note", "email_customer"]
    assert all(key.startswith("approval:") for _, key in outbox_rows(engine))
    assert runner.gate.get(email.id).execution_status == "done"
    assert runner.advance(run.id) is None and len(outbox_rows(engine)) == 2
    runner.store.audit.settle("acme")
    assert Trail(runner.store.audit).verify("acme").ok


def test_reject_completes_the_run_without_the_action(runner: Runner, engine: Engine) -> None:
    run, email = waiting_run(runner)
    assert runner.gate is not None
    runner.gate.decide(
        email.id,
        reviewer="li",
        roles=REVIEWERS,
        decision="reject",
        payload_hash=email.payload_hash,
        reason="too pushy",
    )
    done = runner.run_inline(run.id)
    assert done.result is not None
    assert [(o["kind"], o["status"], o["executed"]) for o in done.result["outcomes"]] == [
        ("post_note", "approved", True),
        ("email_customer", "rejected", False),
    ]
    assert [k for k, _ in outbox_rows(engine)] == ["post_note"]


def test_edit_then_approve_executes_the_edited_payload(runner: Runner, engine: Engine) -> None:
    run, email = waiting_run(runner)
    assert runner.gate is not None
    runner.gate.edit(
        email.id,
        reviewer="li",
        roles=REVIEWERS,
        edits={"body": "Hello Ana, may we call?"},
        payload_hash=email.payload_hash,
    )
    done = runner.run_inline(run.id)
    assert done.result is not None
    sent = next(o for o in done.result["outcomes"] if o["kind"] == "email_customer")
    assert (sent["version"], sent["payload"]["body"], sent["executed"]) == (
        2,
        "Hello Ana, may we call?",
        True,
    )


class Crash(BaseException):
    """A worker dying between the executor's action and the request being closed."""


class CrashOnce:
    name = "outbox"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.crashed = False

    def execute(self, action: Action) -> Receipt:
        receipt = self.inner.execute(action)
        if action.kind == "email_customer" and not self.crashed:
            self.crashed = True
            raise Crash
        return receipt


def test_a_worker_killed_between_decision_and_execution_executes_exactly_once(
    runner: Runner, engine: Engine
) -> None:
    run, email = waiting_run(runner)
    assert runner.gate is not None
    runner.gate.decide(
        email.id,
        reviewer="maya",
        roles=REVIEWERS,
        decision="approve",
        payload_hash=email.payload_hash,
    )
    crashing = CrashOnce(runner.executors["outbox"])
    runner.executors["outbox"] = crashing
    with pytest.raises(Crash):
        runner.advance(run.id)
    assert runner.gate.get(email.id).execution_status is None  # acted, not yet closed
    age_lease(engine, run.id, 120)  # the dead worker's lease expires
    done = Runner(
        runner.store,
        runner.registry,
        context=runner.context,
        model=runner.model,
        executors=runner.executors,
        gate=runner.gate,
        owner="worker-b",
    ).run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert [k for k, _ in outbox_rows(engine)] == ["post_note", "email_customer"]  # once each
    assert runner.gate.get(email.id).execution_status == "done"


def test_an_expired_approval_sends_the_run_down_its_fallback_path(
    runner: Runner, engine: Engine
) -> None:
    run, _ = waiting_run(runner)
    assert runner.gate is not None
    clock = runner.gate.clock
    runner.gate.clock = lambda: clock() + 25 * 3600
    try:
        expired = runner.gate.expire_due()
    finally:
        runner.gate.clock = clock
    assert [r.status for r in expired] == ["expired"]
    done = runner.run_inline(run.id)
    assert done.result is not None
    assert [(o["kind"], o["status"]) for o in done.result["outcomes"]] == [
        ("post_note", "approved"),
        ("email_customer", "expired"),
    ]
    assert [k for k, _ in outbox_rows(engine)] == ["post_note"]


sneaky = Workflow("sneaky", "1", input=flows.Start, actions=["post_note"])


@sneaky.step
def reach(ctx: StepContext, inp: flows.Start) -> flows.Start:
    ctx.propose("email_customer", {"to": inp.subject_id, "subject": "Hi", "body": "Hello"},
                confidence=0.9)  # fmt: skip
    return inp


class Seen(BaseModel):
    ids: list[str] = []
    outcomes: list[str] = []


looping = Workflow("looping", "1", input=flows.Start, actions=["post_note"])


@looping.step
def loop(ctx: StepContext, inp: flows.Start) -> Seen | Again[Seen]:
    seen = Seen.model_validate(ctx.progress or {})
    if ctx.round == 0:
        proposed = ctx.propose("post_note", {"account": inp.subject_id, "text": "Up 12%"},
                               confidence=0.9)  # fmt: skip
        assert proposed is not None
        return Again(Seen(ids=[proposed]))
    seen.outcomes = [f"{o.action_id}={o.kind}:{o.status}" for o in ctx.round_outcomes()]
    assert ctx.consent_refusal() is None
    return seen


def test_action_ids_follow_one_grammar_and_a_step_prefix_never_matches_another_step() -> None:
    assert action_id("r1", 1, n=0) == "r1:1:000"
    assert action_id("r1", 1, round=2, n=3) == "r1:1:r2:003"
    assert action_id("r1", 1, round=2) == "r1:1:r2:"
    assert action_id("r1", 1) == "r1:1:"
    assert action_id("r1", 1, round=2, n=3).startswith(action_id("r1", 1))
    assert not action_id("r1", 10, n=0).startswith(action_id("r1", 1))


def test_proposing_a_kind_the_workflow_did_not_declare_fails_the_run_with_a_code(
    runner: Runner, engine: Engine
) -> None:
    """Given a workflow declaring only post_note, when its step proposes email_customer
    (a catalogued kind, but not its own), the run fails and nothing reaches the gate."""
    runner.registry.register(sneaky)
    run, _ = runner.trigger("sneaky", "acct-1", tenant="acme")
    done = runner.run_inline(run.id)
    assert done.state == RunState.FAILED
    assert done.error is not None and done.error["code"] == "run.action_undeclared"
    assert "'email_customer'" in done.error["message"]
    assert "post_note" in done.error["message"]  # what it does declare
    assert runner.gate is not None and runner.gate.of_run(run.id) == []


def test_a_proposal_returns_its_action_id_and_the_step_sees_where_it_stands(
    runner: Runner,
) -> None:
    """ctx.propose returns the id the gate files the request under; the next round's
    ctx.round_outcomes() reports it (the public face the agent loop is written against)."""
    runner.registry.register(looping)
    run, _ = runner.trigger("looping", "acct-1", tenant="acme")
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED and done.result is not None
    assert done.result["ids"] == [f"{run.id}:0:r0:000"]
    assert done.result["outcomes"] == [f"{run.id}:0:r0:000=post_note:approved"]
