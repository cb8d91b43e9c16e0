"""The durable runner, in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, func, select

from audit import Actor, Query, Trail
from copilot import StepContext
from copilot.db.tables import outbox
from copilot.engine.executor import ExecutionError
from copilot.engine.runner import Runner
from copilot.engine.runs import RunState
from copilot.errors import RunStateError, TransientError, UnknownWorkflowError
from copilot.governance.sources import put_signals
from copilot.workflow.definition import Await, Workflow
from copilot.workflow.registry import Registry
from tests.support import flows
from tests.support.runtime import age_lease


def effects(engine: Engine, run_id: str) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(flows.flow_effects.c.step).where(flows.flow_effects.c.run_id == run_id)
        )
        return Counter(rows.scalars())


def audit_events(runner: Runner, run_id: str) -> list[str]:
    store = runner.store.audit
    store.settle("acme")
    return [e.event_type for e in store.query("acme", Query(run_id=run_id, limit=1000))]


def test_a_run_completes_every_step_once_and_its_trail_verifies(
    runner: Runner, engine: Engine
) -> None:
    run, created = runner.trigger("five_steps", "acct-1", tenant="acme", idempotency_key="k1")
    assert created and run.state == RunState.QUEUED
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert done.result == {"subject_id": "acct-1", "n": 5, "delay_ms": 0}
    assert effects(engine, run.id) == Counter({f"s{i}": 1 for i in range(1, 6)})
    assert [s.name for s in runner.store.steps(run.id)] == ["s1", "s2", "s3", "s4", "s5"]
    assert audit_events(runner, run.id) == [
        "run.created",
        "run.started",
        "run.context_assessed",
        *["step.completed"] * 5,
        "run.completed",
    ]
    assert Trail(runner.store.audit).verify("acme").ok
    assert runner.advance(run.id) is None  # finished: nothing to advance


def test_the_same_idempotency_key_returns_the_same_run(runner: Runner) -> None:
    first, created = runner.trigger("five_steps", "acct-1", tenant="acme", idempotency_key="same")
    again, created_again = runner.trigger(
        "five_steps", "acct-1", tenant="acme", idempotency_key="same"
    )
    assert created and not created_again and again.id == first.id
    other, _ = runner.trigger("five_steps", "acct-1", tenant="globex", idempotency_key="same")
    assert other.id != first.id  # keys are per tenant


def test_a_pause_is_durable_and_resuming_runs_only_what_is_left(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("pausing", "acct-2", tenant="acme")
    waiting = runner.run_inline(run.id)
    assert waiting.state == RunState.WAITING
    assert runner.store.steps(run.id)[0].request == {"kind": "approval", "action": "email_customer"}
    assert runner.advance(run.id) is None  # a waiting run is not advanced by redelivery
    runner.store.resume(
        run.id, {"approved": True, "text": "Edited text"}, actor=Actor.human("maya")
    )
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert done.result == {"subject_id": "acct-2", "executed": True, "note": "Edited text"}
    assert effects(engine, run.id) == Counter({"propose": 1, "apply": 1})
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1
    with pytest.raises(RunStateError, match="not waiting"):
        runner.store.resume(run.id, {"approved": True}, actor=Actor.human("maya"))
    assert "run.resumed" in audit_events(runner, run.id)


def test_a_crashed_worker_is_taken_over_after_its_lease_expires(
    runner: Runner, engine: Engine
) -> None:
    """Worker A dies after two steps; B takes over when the lease expires and runs 3..5 only."""
    run, _ = runner.trigger("five_steps", "acct-3", tenant="acme")

    class Crash(BaseException):
        pass

    original = flows.s3
    calls = {"n": 0}

    def crash_in_s3(ctx: StepContext, inp: flows.Count) -> flows.Count:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash
        return original(ctx, inp)

    step = runner.registry.get("five_steps").steps[2]
    object.__setattr__(step, "fn", crash_in_s3)
    try:
        with pytest.raises(Crash):
            runner.advance(run.id)
        assert runner.store.get(run.id).step_index == 2
        takeover = Runner(
            runner.store,
            runner.registry,
            context=runner.context,
            model=runner.model,
            executors=runner.executors,
            owner="worker-b",
            lease_seconds=60,
        )
        assert takeover.advance(run.id) is None  # A's lease has not expired yet
        age_lease(engine, run.id, 120)
        done = takeover.run_inline(run.id)
    finally:
        object.__setattr__(step, "fn", original)
    assert done.state == RunState.COMPLETED
    assert effects(engine, run.id) == Counter({f"s{i}": 1 for i in range(1, 6)})
    assert "run.lease_recovered" in audit_events(runner, run.id)


def test_two_workers_racing_for_one_run_never_both_advance_it(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("five_steps", "acct-4", tenant="acme")
    results = []
    workers = [
        Runner(
            runner.store,
            runner.registry,
            context=runner.context,
            model=runner.model,
            executors=runner.executors,
            owner=f"w{i}",
        )
        for i in range(4)
    ]
    threads = [
        threading.Thread(target=lambda w=w: results.append(w.advance(run.id))) for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert runner.store.get(run.id).state == RunState.COMPLETED
    assert effects(engine, run.id) == Counter({f"s{i}": 1 for i in range(1, 6)})


def test_a_failing_step_fails_the_run_with_a_code(runner: Runner) -> None:
    run, _ = runner.trigger("failing", "acct-5", tenant="acme")
    done = runner.run_inline(run.id)
    assert done.state == RunState.FAILED
    assert done.error is not None and done.error["code"] == "run.step_failed"
    assert "upstream CRM returned garbage" in done.error["message"]
    assert audit_events(runner, run.id)[-1] == "run.failed"


class V2(BaseModel):
    subject_id: str
    delay_ms: int = 0


def test_a_run_waiting_across_a_deploy_resumes_on_its_own_version(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("pausing", "acct-6", tenant="acme")
    assert runner.run_inline(run.id).state == RunState.WAITING
    v2 = Workflow("pausing", "2", input=flows.Start)

    @v2.step
    def different(ctx: StepContext, inp: flows.Start) -> flows.Count:
        raise AssertionError("a v1 run must never execute v2's steps")

    runner.registry.register(v2)
    assert runner.registry.get("pausing").version == "2"  # new runs get v2
    runner.store.resume(run.id, {"approved": False, "reason": "not now"}, actor=Actor.human("li"))
    assert runner.run_inline(run.id).state == RunState.COMPLETED

    gone, _ = runner.trigger("pausing", "acct-7", tenant="acme", version="1")
    deployed = Registry([v2])  # v1 removed by the deploy
    after = Runner(
        runner.store,
        deployed,
        context=runner.context,
        model=runner.model,
        executors=runner.executors,
        owner="new-deploy",
    )
    failed = after.run_inline(gone.id)
    assert failed.state == RunState.FAILED
    assert failed.error is not None and failed.error["code"] == "workflow.version_gone"
    with pytest.raises(UnknownWorkflowError, match="pausing@1"):
        deployed.get("pausing", "1")


def test_degradation_ladder_from_the_signals_present(runner: Runner, engine: Engine) -> None:
    now = runner.store.clock()
    put_signals(
        engine,
        "acme",
        "full",
        {"trial_usage": 12, "trial_nps": 40, "trial_tickets": 1},
        observed_at=now,
    )
    put_signals(engine, "acme", "partial", {"trial_usage": 12, "trial_nps": 40}, observed_at=now)
    put_signals(engine, "acme", "thin", {"trial_nps": 40, "trial_tickets": 2}, observed_at=now)
    put_signals(engine, "acme", "stale", {"trial_usage": 5}, observed_at=now - 30 * 86400)
    outcome = {}
    for subject in ("full", "partial", "thin", "stale", "nothing"):
        run, _ = runner.trigger("summarize", subject, tenant="acme")
        outcome[subject] = runner.run_inline(run.id)
    # No model configured: the rules path, at most partial, flagged with the reason.
    assert outcome["full"].level == "partial" and outcome["full"].reasons == ["model_unavailable"]
    assert outcome["full"].result is not None and outcome["full"].result["method"] == "rules"
    assert outcome["partial"].level == "partial"
    assert "missing:trial_tickets" in outcome["partial"].reasons
    assert outcome["thin"].level == "thin" and "missing:trial_usage" in outcome["thin"].reasons
    assert outcome["thin"].result is not None and outcome["thin"].result["confidence"] <= 0.5
    assert outcome["stale"].state == RunState.SKIPPED  # its only signal is stale: nothing fresh
    assert "stale:trial_usage" in outcome["stale"].reasons
    assert outcome["nothing"].state == RunState.SKIPPED
    assert "no_signals" in outcome["nothing"].reasons
    assert "run.skipped" in audit_events(runner, outcome["nothing"].id)


def test_bad_inputs_are_refused_before_a_run_exists(runner: Runner) -> None:
    from copilot.errors import CopilotError

    with pytest.raises(CopilotError, match="do not fit Start") as info:
        runner.trigger("five_steps", "acct-9", tenant="acme", inputs={"delay_ms": "soon"})
    assert info.value.code == "run.invalid_inputs"
    assert runner.store.list_runs("acme") == []


class Big(BaseModel):
    subject_id: str
    n: int


ends_waiting = Workflow("ends_waiting", "1", input=flows.Start)


@ends_waiting.step
def last_pause(ctx: StepContext, inp: flows.Start) -> Await[flows.Start]:
    return Await(inp, {"kind": "approval"})


unencodable = Workflow("unencodable", "1", input=flows.Start)


@unencodable.step
def too_big(ctx: StepContext, inp: flows.Start) -> Big:
    return Big(subject_id=inp.subject_id, n=2**60)  # no exact JSON number: cannot be checkpointed


flaky_action = Workflow("flaky_action", "1", input=flows.Start)


@flaky_action.step
def act(ctx: StepContext, inp: flows.Start) -> flows.Start:
    ctx.execute("ping", {"subject_id": inp.subject_id}, executor="down")
    return inp


class Down:
    name = "down"

    def execute(self, action: Any) -> Any:
        raise ExecutionError("the endpoint is down; retried later with the same key")


def test_a_pause_on_the_last_step_completes_on_resume(runner: Runner) -> None:
    runner.registry.register(ends_waiting)
    run, _ = runner.trigger("ends_waiting", "acct-1", tenant="acme")
    assert runner.run_inline(run.id).state == RunState.WAITING
    runner.store.resume(run.id, {"approved": True}, actor=Actor.human("maya"))
    assert runner.run_inline(run.id).state == RunState.COMPLETED


def test_an_output_that_cannot_be_checkpointed_fails_the_run_instead_of_looping(
    runner: Runner,
) -> None:
    runner.registry.register(unencodable)
    run, _ = runner.trigger("unencodable", "acct-1", tenant="acme")
    done = runner.run_inline(run.id)
    assert done.state == RunState.FAILED
    assert done.error is not None and done.error["code"] == "audit.non_canonical"


def test_an_executor_that_is_down_is_a_transient_fault_not_a_failed_run(runner: Runner) -> None:
    runner.registry.register(flaky_action)
    runner.executors["down"] = Down()  # type: ignore[assignment]
    run, _ = runner.trigger("flaky_action", "acct-1", tenant="acme")
    with pytest.raises(TransientError, match="endpoint is down"):
        runner.advance(run.id)
    runner.requeue(run.id, "transient")
    assert runner.store.get(run.id).state == RunState.QUEUED


def test_a_run_taken_too_many_times_fails_with_a_code(runner: Runner) -> None:
    run, _ = runner.trigger("five_steps", "acct-1", tenant="acme")
    runner.max_attempts = 0
    done = runner.run_inline(run.id)
    assert done.state == RunState.FAILED
    assert done.error is not None and done.error["code"] == "run.too_many_attempts"


def test_a_server_runtime_logs_a_broker_that_is_away_instead_of_failing_the_write(
    tmp_path: Path,
) -> None:
    """The API's Runtime: a run is durable before its wake-up; a lost wake-up is the sweeper's."""
    from copilot.runtime import Runtime
    from copilot.settings import Settings

    settings = Settings(
        home=tmp_path,
        broker_url="redis://127.0.0.1:1/0",  # nothing listens on port 1
        workflow_modules="tests.support.flows",
    )
    strict = Runtime(settings)
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises
        strict.enqueue("0" * 32)
    tolerant = Runtime(settings, tolerate_broker_errors=True).prepare()
    try:
        from copilot.db.engines import upgrade

        upgrade(tolerant.engine)
        run, created = tolerant.runner.trigger("five_steps", "acct-1", tenant="acme")
        assert created and tolerant.runs.get(run.id).state.value == "queued"
    finally:
        tolerant.close()
        strict.close()
