"""The one-call paths (PostgreSQL's functions, SQLite's one-statement view) keep the
general path's guarantees: a checkpoint whose lease was lost writes nothing, the audit
chain they extend verifies, and a resumed run goes on where it paused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from audit import Actor, Query
from copilot import StepContext
from copilot.db.tables import run_steps, runs
from copilot.engine.runner import Runner
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
        return flows.t3(ctx, inp)

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


def test_workers_advancing_runs_at_once_leave_one_chain_and_each_run_once(rt: Runtime) -> None:
    """Given four threads, each with its own runner, advancing five plain runs apiece at
    once while racing a fifth runner for each run, every run completes once, every step
    is checkpointed once, and the tenant's one chain verifies."""
    ids = [rt.runner.trigger("plain", f"acct-{i}", tenant="acme")[0].id for i in range(20)]
    runners = [
        Runner(rt.runs, rt.registry, context=rt.runner.context, model=rt.runner.model,
               executors=rt.runner.executors, owner=f"w{i}")
        for i in range(5)
    ]  # fmt: skip
    errors: list[BaseException] = []

    def work(runner: Runner, mine: list[str]) -> None:
        try:
            for rid in mine:
                runner.advance(rid)
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(runners[i], ids[i * 5 : i * 5 + 5]))
               for i in range(4)]  # fmt: skip
    threads.append(threading.Thread(target=work, args=(runners[4], ids)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {rt.runs.get(rid).state for rid in ids} == {RunState.COMPLETED}
    assert all(_steps(rt.engine, rid) == 5 for rid in ids)
    rt.audit.settle("acme")
    done = rt.audit.query("acme", Query(event_type="step.completed", limit=1000))
    assert len(done) == 100 and len({(e.run_id, e.data["idx"]) for e in done}) == 100
    verdict = rt.trail.verify("acme")
    assert verdict.ok, verdict.line()


def test_a_column_added_to_runs_under_live_connections_breaks_no_prepared_statement(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    """A migration adds a column to `runs` while the pool holds prepared statements (a
    rolling deploy): the hot paths' statements name their columns or return the table's
    row type, so none fails with "cached plan must not change result type"."""
    import psycopg

    from tests.support.services import PG_DSN

    rt = build_runtime(pg_url, tmp_path, woken=[])
    try:
        for i in range(8):  # every pooled connection prepares the hot statements
            run, _ = rt.runner.trigger("plain", f"warm-{i}", tenant="acme")
            assert rt.runner.advance(run.id).state == RunState.COMPLETED
        with psycopg.connect(PG_DSN, autocommit=True) as deploy:  # the migration's session
            deploy.execute(f"ALTER TABLE {pg_schema}.runs ADD COLUMN deploy_note text")
        for i in range(4):
            run, _ = rt.runner.trigger("plain", f"after-{i}", tenant="acme")
            assert rt.runner.advance(run.id).state == RunState.COMPLETED
    finally:
        rt.close()
