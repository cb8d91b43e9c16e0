"""The one-call paths (PostgreSQL's functions, SQLite's one-statement view) keep the
general path's guarantees: a checkpoint whose lease was lost writes nothing, the audit
chain they extend verifies, and a resumed run goes on where it paused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from audit import Actor, Query
from copilot import StepContext
from copilot.db.tables import run_steps, runs
from copilot.engine.runs import RunState
from copilot.errors import RunStateError
from copilot.runtime import Runtime
from tests.support import flows
from tests.support.runtime import build_runtime


@pytest.fixture
def rt(engine: Engine, tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(engine, tmp_path, woken=[])
    yield runtime
    runtime.runs.close()


def _steps(engine: Engine, run_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(run_steps).where(run_steps.c.run_id == run_id)
            ).scalar_one()
        )


def test_a_checkpoint_after_the_lease_was_taken_over_writes_nothing(
    rt: Runtime, engine: Engine
) -> None:
    """Given another worker took the run's lease while step 3 ran, its checkpoint commits
    no step row and no audit event, and the advance reports the run as not ours."""
    run, _ = rt.runner.trigger("plain", "acct-1", tenant="acme")
    step = rt.registry.get("plain").steps[2]
    original = step.fn

    def stolen(ctx: StepContext, inp: flows.Tick) -> flows.Tick:
        with engine.begin() as conn:  # the takeover, as another worker commits it
            conn.execute(update(runs).where(runs.c.id == run.id).values(lease_owner="worker-b"))
        return original(ctx, inp)

    object.__setattr__(step, "fn", stolen)
    try:
        after = rt.runner.advance(run.id)
    finally:
        object.__setattr__(step, "fn", original)
    assert after is not None and after.lease_owner == "worker-b" and after.step_index == 2
    assert _steps(engine, run.id) == 2
    rt.audit.settle("acme")  # PostgreSQL: chain what a busy writer queued
    done = rt.audit.query("acme", Query(run_id=run.id, event_type="step.completed", limit=10))
    assert [e.data["idx"] for e in done] == [0, 1]
    assert rt.trail.verify("acme").ok


def test_runs_through_the_one_call_paths_leave_a_chain_that_verifies(rt: Runtime) -> None:
    """Given plain runs completed and one paused and resumed, every event is chained in
    order, each run's events in its own order, and the stream verifies."""
    for i in range(3):
        run, _ = rt.runner.trigger("plain", f"acct-{i}", tenant="acme")
        assert rt.runner.advance(run.id).state == RunState.COMPLETED  # type: ignore[union-attr]
    paused, _ = rt.runner.trigger("plain_paused", "acct-9", tenant="acme")
    assert rt.runner.run_inline(paused.id).state == RunState.WAITING
    with pytest.raises(RunStateError, match="not waiting"):
        rt.runs.resume(run.id, {"approved": True}, actor=Actor.human("maya"))
    assert rt.runs.resume(paused.id, {"ok": True}, actor=Actor.human("maya")).state == "queued"
    assert rt.runner.run_inline(paused.id).state == RunState.COMPLETED
    rt.audit.settle("acme")
    types = [e.event_type for e in rt.audit.query("acme", Query(run_id=run.id, limit=50))]
    assert types == ["run.created", "run.started", "run.context_assessed",
                     *["step.completed"] * 5, "run.completed"]  # fmt: skip
    resumed = [e.event_type for e in rt.audit.query("acme", Query(run_id=paused.id, limit=50))]
    assert resumed.count("run.resumed") == 1 and resumed[-1] == "run.completed"
    verdict = rt.trail.verify("acme")
    assert verdict.ok, verdict.line()
