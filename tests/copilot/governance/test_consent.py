"""Opt-out and snooze: no run for an opted-out subject, no execution after consent is withdrawn."""

from __future__ import annotations

from sqlalchemy import Engine, select

from audit import Actor, Query
from copilot.db.tables import outbox
from copilot.engine.runner import Runner
from copilot.engine.runs import RunState
from copilot.governance.consent import Preferences

REVIEWERS = frozenset({"reviewer"})


def test_an_opted_out_or_snoozed_subject_gets_a_skipped_run_with_the_reason(runner: Runner) -> None:
    assert runner.consent is not None
    runner.consent.set(
        Preferences(tenant="acme", subject_id="out", opt_out_all=True), actor=Actor.human("out")
    )
    runner.consent.set(
        Preferences(tenant="acme", subject_id="one", opt_out_workflows=("five_steps",)),
        actor=Actor.human("one"),
    )
    later = runner.store.clock() + 3600
    runner.consent.set(
        Preferences(tenant="acme", subject_id="nap", snooze_until=later), actor=Actor.human("nap")
    )
    outcomes = {
        s: runner.trigger("five_steps", s, tenant="acme")[0] for s in ("out", "one", "nap", "ok")
    }
    assert {s: (r.state, r.reasons[:1]) for s, r in outcomes.items() if s != "nap"} == {
        "out": (RunState.SKIPPED, ["opted_out:all"]),
        "one": (RunState.SKIPPED, ["opted_out:five_steps"]),
        "ok": (RunState.QUEUED, []),
    }
    assert outcomes["nap"].state == RunState.SKIPPED and outcomes["nap"].reasons[0].startswith(
        "snoozed_until:"
    )
    assert (
        runner.trigger("pausing", "one", tenant="acme")[0].state == RunState.QUEUED
    )  # only that workflow
    runner.store.audit.settle("acme")
    skipped = runner.store.audit.query("acme", Query(subject_id="out"))
    assert [e.event_type for e in skipped] == ["subject.preferences_changed", "run.created"]
    assert skipped[1].data["reason"] == "opted_out:all"


def test_a_subject_who_opts_out_while_an_action_waits_gets_no_execution(
    runner: Runner, engine: Engine
) -> None:
    assert runner.gate is not None and runner.consent is not None
    run, _ = runner.trigger("proposing", "acct-9", tenant="acme", triggered_by="app:crm")
    assert runner.run_inline(run.id).state == RunState.WAITING
    email = runner.gate.queue("acme")[0][0]
    runner.consent.set(
        Preferences(tenant="acme", subject_id="acct-9", opt_out_all=True),
        actor=Actor.human("acct-9"),
    )
    runner.gate.decide(
        email.id,
        reviewer="maya",
        roles=REVIEWERS,
        decision="approve",
        payload_hash=email.payload_hash,
    )
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert done.result is not None
    # The note was auto-approved and acted when the run parked, while consent held; the
    # email, approved after the opt-out, never acts.
    assert [(o["kind"], o["status"], o["executed"]) for o in done.result["outcomes"]] == [
        ("post_note", "approved", True),
        ("email_customer", "cancelled", False),
    ]
    with engine.connect() as conn:
        assert [r.kind for r in conn.execute(select(outbox))] == ["post_note"]
    runner.store.audit.settle("acme")
    cancelled = runner.store.audit.query("acme", Query(event_type="approval.cancelled"))
    assert {e.data["reason"] for e in cancelled} == {"consent withdrawn (opted_out:all)"}
