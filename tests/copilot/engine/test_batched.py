"""durability="batched": plain steps commit with the next checkpoint, on both databases.

What the trade gives up (a lost worker runs its held steps again) and what it must not
(a step recorded twice or not at all, a write after the lease is lost, the trail broken):
each case drives a real runner on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from audit import Actor, Query, Trail
from copilot import StepContext
from copilot.db.tables import outbox, run_steps
from copilot.engine.checkpoint import Batch
from copilot.engine.executor import ExecutionError
from copilot.engine.runner import Runner
from copilot.engine.runs import RunState
from copilot.errors import TransientError, WorkflowDefinitionError
from copilot.workflow.definition import Await, Workflow
from copilot.workflow.registry import Registry
from tests.support import flows
from tests.support.flows import Tick
from tests.support.runtime import age_lease

# What a step does besides counting, by (workflow, step name): set per test.
HOOKS: dict[tuple[str, str], Callable[[StepContext], None]] = {}
CALLS: Counter[str] = Counter()


def _step(name: str) -> Callable[[StepContext, Tick], Tick]:
    def fn(ctx: StepContext, inp: Tick) -> Tick:
        CALLS[name] += 1
        hook = HOOKS.get((ctx.workflow.name, name))
        if hook is not None:
            hook(ctx)
        return Tick(subject_id=inp.subject_id, n=inp.n + 1)

    fn.__name__ = name
    return fn


def _pausing(name: str) -> Callable[[StepContext, Tick], Await[Tick]]:
    plain = _step(name)

    def fn(ctx: StepContext, inp: Tick) -> Await[Tick]:
        return Await(plain(ctx, inp), {"kind": "approval"})

    fn.__name__ = name
    return fn


def _workflow(name: str, *, pause_at: int | None = None) -> Workflow:
    wf = Workflow(name, "1", input=Tick, durability="batched", actions=["post_note"])
    for i in range(1, 6):
        wf.step(_pausing(f"b{i}") if i == pause_at else _step(f"b{i}"))
    return wf


@pytest.fixture(autouse=True)
def _clean() -> Any:
    HOOKS.clear()
    CALLS.clear()
    yield
    HOOKS.clear()


@pytest.fixture
def registry() -> Registry:
    r = Registry()
    r.register_module(flows)
    r.register(_workflow("batched"))
    r.register(_workflow("batched_pause", pause_at=3))
    return r


def _events(runner: Runner, run_id: str) -> list[str]:
    runner.store.audit.settle("acme")
    found = runner.store.audit.query("acme", Query(run_id=run_id, limit=1000))
    return [e.event_type for e in found]


def _rows(engine: Engine, run_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(
            select(func.count()).select_from(run_steps).where(run_steps.c.run_id == run_id)
        ).scalar_one())  # fmt: skip


def _other(runner: Runner, owner: str, **kw: Any) -> Runner:
    return Runner(runner.store, runner.registry, context=runner.context, model=runner.model,
                  executors=runner.executors, owner=owner, **kw)  # fmt: skip


def _steps_once(runner: Runner, run_id: str) -> None:
    """Each step is recorded once, in order, and the trail verifies."""
    assert [s.name for s in runner.store.steps(run_id)] == ["b1", "b2", "b3", "b4", "b5"]
    assert _events(runner, run_id).count("step.completed") == 5
    assert Trail(runner.store.audit).verify("acme").ok


def test_a_batched_run_commits_its_steps_with_the_completion(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("batched", "acct-1", tenant="acme")
    seen: list[int] = []
    HOOKS[("batched", "b5")] = lambda ctx: seen.append(_rows(engine, run.id))
    done = runner.advance(run.id)
    assert done is not None and done.state == RunState.COMPLETED
    assert done.result == {"subject_id": "acct-1", "n": 5}
    assert seen == [0]  # nothing committed while the steps ran
    _steps_once(runner, run.id)
    assert _events(runner, run.id) == [
        "run.created", "run.started", "run.context_assessed",
        *["step.completed"] * 5, "run.completed",
    ]  # fmt: skip
    steps = runner.store.steps(run.id)
    assert [s.idx for s in steps] == [0, 1, 2, 3, 4]
    assert all(s.finished_at is not None and s.started_at <= s.finished_at for s in steps)
    assert [s.finished_at for s in steps] == sorted(s.finished_at for s in steps)


def test_a_worker_lost_mid_batch_loses_only_its_held_steps_and_they_run_again_once(
    runner: Runner, engine: Engine
) -> None:
    class Crash(BaseException):  # the worker dies: no handler runs
        pass

    run, _ = runner.trigger("batched", "acct-2", tenant="acme")

    def crash(ctx: StepContext) -> None:
        if CALLS["b4"] == 1:
            raise Crash

    HOOKS[("batched", "b4")] = crash
    with pytest.raises(Crash):
        runner.advance(run.id)
    lost = runner.store.get(run.id)
    assert lost.state == RunState.RUNNING and lost.step_index == 0
    assert _rows(engine, run.id) == 0 and "step.completed" not in _events(runner, run.id)
    age_lease(engine, run.id, 3600)
    done = _other(runner, "worker-b").run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert Counter(b1=2, b2=2, b3=2, b4=2, b5=1) == CALLS  # the held steps ran again
    _steps_once(runner, run.id)


def test_a_transient_fault_keeps_the_steps_that_ran_before_it(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("batched", "acct-3", tenant="acme")

    def flaky(ctx: StepContext) -> None:
        if CALLS["b4"] == 1:
            raise ExecutionError("the CRM timed out")  # an endpoint away: retried

    HOOKS[("batched", "b4")] = flaky
    with pytest.raises(TransientError):
        runner.advance(run.id)
    assert runner.store.get(run.id).step_index == 3 and _rows(engine, run.id) == 3
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert Counter(b1=1, b2=1, b3=1, b4=2, b5=1) == CALLS
    _steps_once(runner, run.id)


def test_a_failing_step_commits_the_steps_before_its_failure(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("batched", "acct-4", tenant="acme")

    def broken(ctx: StepContext) -> None:
        raise ValueError("upstream CRM returned garbage")

    HOOKS[("batched", "b3")] = broken
    done = runner.run_inline(run.id)
    assert done.state == RunState.FAILED and done.error is not None
    assert done.error["code"] == "run.step_failed"
    assert [s.name for s in runner.store.steps(run.id)] == ["b1", "b2"]
    assert _events(runner, run.id)[-3:] == ["step.completed", "step.completed", "run.failed"]
    assert Trail(runner.store.audit).verify("acme").ok


def test_a_step_with_an_effect_commits_the_held_steps_before_its_own(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("batched", "acct-5", tenant="acme")
    seen: list[int] = []

    def effect(ctx: StepContext) -> None:
        seen.append(_rows(engine, run.id))
        ctx.on_commit(lambda conn: conn.execute(
            insert(flows.flow_effects).values(run_id=ctx.run.id, step=ctx.step.name, n=3)))  # fmt: skip

    HOOKS[("batched", "b3")] = effect
    HOOKS[("batched", "b5")] = lambda ctx: seen.append(_rows(engine, run.id))
    done = runner.advance(run.id)
    assert done is not None and done.state == RunState.COMPLETED
    assert seen == [0, 3]  # b1-b2 held until b3's own checkpoint; b4 held until the end
    with engine.connect() as conn:
        effects = conn.execute(select(flows.flow_effects.c.step).where(
            flows.flow_effects.c.run_id == run.id)).scalars().all()  # fmt: skip
    assert effects == ["b3"]
    _steps_once(runner, run.id)


def test_a_pause_commits_the_held_steps_with_it_and_the_resume_finishes(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("batched_pause", "acct-6", tenant="acme")
    waiting = runner.advance(run.id)
    assert waiting is not None and waiting.state == RunState.WAITING
    assert waiting.step_index == 3 and _rows(engine, run.id) == 3
    assert runner.store.steps(run.id)[2].status == "awaiting"
    runner.store.resume(run.id, {"approved": True}, actor=Actor.human("maya"))
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert Counter(b1=1, b2=1, b3=1, b4=1, b5=1) == CALLS
    _steps_once(runner, run.id)


def test_a_lease_lost_mid_batch_writes_nothing_of_the_batch(runner: Runner, engine: Engine) -> None:
    run, _ = runner.trigger("batched", "acct-7", tenant="acme")
    other = _other(runner, "worker-b")
    finished: list[RunState] = []

    def stolen(ctx: StepContext) -> None:
        if CALLS["b3"] == 1:  # worker A is slow here: its lease expires, B runs the run
            age_lease(engine, run.id, 3600)
            finished.append(other.run_inline(run.id).state)

    HOOKS[("batched", "b3")] = stolen
    after = runner.advance(run.id)  # A goes on, then commits b1-b5: refused
    assert finished == [RunState.COMPLETED]
    assert after is not None and after.state == RunState.COMPLETED
    assert after.lease_owner is None
    _steps_once(runner, run.id)  # B's five steps, and none of A's
    assert _events(runner, run.id).count("run.completed") == 1


def test_a_tenth_of_a_lease_gone_commits_the_held_steps(runner: Runner, engine: Engine) -> None:
    """A batch never grows older than a tenth of the lease: a step that finishes that long
    after the last commit commits what is held, and renews the lease with it."""
    short = _other(runner, "worker-short", lease_seconds=1.0)
    run, _ = runner.trigger("batched", "acct-8", tenant="acme")
    seen: list[int] = []
    HOOKS[("batched", "b2")] = lambda ctx: time.sleep(0.15)
    HOOKS[("batched", "b3")] = lambda ctx: seen.append(_rows(engine, run.id))
    done = short.advance(run.id)
    assert done is not None and done.state == RunState.COMPLETED
    assert seen == [2]
    _steps_once(runner, run.id)


def test_a_slow_step_after_a_held_one_keeps_the_lease_step_mode_would(
    runner: Runner, engine: Engine
) -> None:
    """Each step starts with at least nine tenths of its lease left: a step of 0.45 s then
    one of 0.7 s on a 1 s lease keep it, as they do when every step commits."""
    short = _other(runner, "worker-short", lease_seconds=1.0)
    thief = _other(runner, "thief", lease_seconds=1.0)
    run, _ = runner.trigger("batched", "acct-10", tenant="acme")
    stolen: list[Any] = []
    HOOKS[("batched", "b1")] = lambda ctx: time.sleep(0.45)

    def slow(ctx: StepContext) -> None:
        time.sleep(0.7)
        stolen.append(thief.advance(run.id))  # the lease must still be ours

    HOOKS[("batched", "b2")] = slow
    done = short.advance(run.id)
    assert stolen == [None]
    assert done is not None and done.state == RunState.COMPLETED
    assert Counter(b1=1, b2=1, b3=1, b4=1, b5=1) == CALLS
    _steps_once(runner, run.id)


def _outbox(engine: Engine, run_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox.c.kind).where(outbox.c.run_id == run_id)).scalars())


def test_held_steps_commit_before_a_step_acts_and_the_acting_step_is_not_held(
    runner: Runner, engine: Engine
) -> None:
    """Nothing outside the database sees a step that is not recorded: before `ctx.execute`
    carries out an action, the steps held before it commit; the acting step commits on its
    own, and a worker lost after it does not act again."""

    class Crash(BaseException):
        pass

    run, _ = runner.trigger("batched", "acct-11", tenant="acme")
    seen: list[tuple[str, int]] = []

    def act(ctx: StepContext) -> None:
        seen.append(("before", _rows(engine, run.id)))
        ctx.execute("post_note", {"subject_id": ctx.run.subject_id, "note": "n"})
        seen.append(("after", _rows(engine, run.id)))

    def crash(ctx: StepContext) -> None:
        seen.append(("b4", _rows(engine, run.id)))
        if CALLS["b4"] == 1:
            raise Crash

    HOOKS[("batched", "b2")] = act
    HOOKS[("batched", "b4")] = crash
    with pytest.raises(Crash):
        runner.advance(run.id)
    # b1 committed before the action; b2 (which acted) by itself; b3 was held and lost.
    assert seen == [("before", 0), ("after", 1), ("b4", 2)]
    age_lease(engine, run.id, 3600)
    done = _other(runner, "worker-b").run_inline(run.id)
    assert done.state == RunState.COMPLETED
    assert Counter(b1=1, b2=1, b3=2, b4=2, b5=1) == CALLS  # only the held b3 ran again
    assert _outbox(engine, run.id) == ["post_note"]
    _steps_once(runner, run.id)


def test_held_steps_commit_before_a_step_uses_the_model(runner: Runner, engine: Engine) -> None:
    run, _ = runner.trigger("batched", "acct-12", tenant="acme")
    seen: list[int] = []

    def model(ctx: StepContext) -> None:
        before = _rows(engine, run.id)
        assert ctx.model is not None  # what a step reads to call the model
        seen.extend([before, _rows(engine, run.id)])

    HOOKS[("batched", "b3")] = model
    HOOKS[("batched", "b4")] = lambda ctx: seen.append(_rows(engine, run.id))
    done = runner.advance(run.id)
    assert done is not None and done.state == RunState.COMPLETED
    assert seen == [0, 2, 3]  # b1-b2 before the model; b3, which used it, by itself
    _steps_once(runner, run.id)


def test_a_zombie_whose_lease_is_gone_does_not_act(runner: Runner, engine: Engine) -> None:
    """A worker that lost its lease while holding steps learns it when they commit before
    its action, and stops there: the action is the new owner's alone."""
    run, _ = runner.trigger("batched", "acct-13", tenant="acme")
    other = _other(runner, "worker-b")
    acted: list[str] = []

    def act(ctx: StepContext) -> None:
        if CALLS["b2"] == 1:  # worker A: its lease expires, B runs the whole run
            age_lease(engine, run.id, 3600)
            assert other.run_inline(run.id).state == RunState.COMPLETED
        ctx.execute("post_note", {"subject_id": ctx.run.subject_id, "note": "n"})
        acted.append(ctx.run.id)

    HOOKS[("batched", "b2")] = act
    after = runner.advance(run.id)
    assert after is not None and after.state == RunState.COMPLETED
    assert len(acted) == 1  # B acted; A stopped before ctx.execute returned
    assert CALLS["b3"] == 1
    _steps_once(runner, run.id)


def test_batch_is_due_at_a_tenth_of_the_lease() -> None:
    batch = Batch(committed=100.0)
    assert not batch.due(105.9, 60) and batch.due(106.0, 60)
    batch.steps.append(({}, []))
    assert batch.take(131.0) == [({}, [])] and batch.steps == [] and batch.committed == 131.0


def test_racing_workers_on_a_batched_run_record_each_step_once(
    runner: Runner, engine: Engine
) -> None:
    run, _ = runner.trigger("batched", "acct-9", tenant="acme")
    workers = [_other(runner, f"w{i}") for i in range(4)]
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def go(w: Runner) -> None:
        barrier.wait()
        results.append(w.advance(run.id))

    threads = [threading.Thread(target=go, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runner.store.get(run.id).state == RunState.COMPLETED
    _steps_once(runner, run.id)


def test_an_unknown_durability_is_refused_with_the_choices() -> None:
    with pytest.raises(WorkflowDefinitionError, match="'step', 'batched'"):
        Workflow("w", "1", input=Tick, durability="exit")


def test_copilot_steps_refuses_arrays_of_different_lengths(pg_url: str) -> None:
    """The server function checks its per-step arrays itself, before writing anything."""
    from psycopg import errors

    from audit.db import create_engine
    from copilot.db.engines import upgrade
    from copilot.engine import fastpath

    engine = create_engine(pg_url)
    upgrade(engine)
    params = {"rid": "r", "owner": "w", "idx": 0, "attempt": 1, "now": 1.0, "seconds": 60,
              "level": "full", "reasons": "[]", "to": None, "result": None,
              **{a: ["x", "y"] for a in fastpath.STEP_ARRAYS},
              "started": [1.0, 2.0], "finished": [1.0, 2.0]}  # fmt: skip
    try:
        for short in fastpath.STEP_ARRAYS:
            bad = {**params, short: params[short][:1]}
            with pytest.raises(
                errors.InvalidParameterValue, match=r"every step array must have \d elements"
            ):
                fastpath.steps(engine, bad, "acme", [])
        with pytest.raises(errors.InvalidParameterValue, match="no steps"):
            fastpath.steps(engine, {**params, "names": []}, "acme", [])
    finally:
        engine.dispose()


def test_a_failed_commit_before_an_action_keeps_the_held_steps_and_does_not_act(
    runner: Runner, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit before an action raises (the database away for a moment) into a step
    that swallows errors: the step cannot go on and act, the held steps stay held and
    commit on the retry, and the attempt is retried as a transient fault."""
    run, _ = runner.trigger("batched", "acct-14", tenant="acme")
    real = runner.checkpoints._commit
    faults = iter([ExecutionError("the database is away")])

    def flaky(*args: Any, **kw: Any) -> Any:
        fault = next(faults, None)
        if fault is not None:
            raise fault
        return real(*args, **kw)

    monkeypatch.setattr(runner.checkpoints, "_commit", flaky)
    acted: list[str] = []

    def careless(ctx: StepContext) -> None:
        with contextlib.suppress(Exception):  # a step that falls back to rules on any error
            ctx.model  # noqa: B018
        ctx.execute("post_note", {"subject_id": ctx.run.subject_id, "note": "n"})
        acted.append(ctx.run.id)

    HOOKS[("batched", "b2")] = careless
    with pytest.raises(TransientError):
        runner.advance(run.id)
    assert acted == [] and _outbox(engine, run.id) == []
    assert [s.name for s in runner.store.steps(run.id)] == ["b1"]  # kept, committed on retry
    done = runner.run_inline(run.id)
    assert done.state == RunState.COMPLETED and acted == [run.id]
    assert _outbox(engine, run.id) == ["post_note"]
    assert Counter(b1=1, b2=2, b3=1, b4=1, b5=1) == CALLS
    _steps_once(runner, run.id)


def test_steps_reaching_out_from_several_threads_commit_the_held_steps_once(
    runner: Runner, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that calls the model from a pool of threads: one of them commits what is
    held, the others wait for it (the window widened by a slow take)."""
    real_take = Batch.take

    def slow_take(self: Batch, now: float) -> Any:
        time.sleep(0.05)
        return real_take(self, now)

    monkeypatch.setattr(Batch, "take", slow_take)
    run, _ = runner.trigger("batched", "acct-15", tenant="acme")

    def pool(ctx: StepContext) -> None:
        barrier = threading.Barrier(4)

        def touch() -> None:
            barrier.wait()
            assert ctx.model is not None

        threads = [threading.Thread(target=touch) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    HOOKS[("batched", "b2")] = pool
    done = runner.advance(run.id)
    assert done is not None and done.state == RunState.COMPLETED
    _steps_once(runner, run.id)


def test_a_worker_clock_stepping_back_does_not_stretch_a_batch(
    runner: Runner, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's age is measured on a monotonic clock: a wall clock stepped back 30 s
    (NTP) mid-run does not let held steps outlive the lease."""
    short = _other(runner, "worker-short", lease_seconds=1.0)
    thief = _other(runner, "thief", lease_seconds=1.0)
    shift = {"s": 0.0}
    monkeypatch.setattr(runner.store, "clock", lambda: time.time() - shift["s"])
    run, _ = runner.trigger("batched", "acct-16", tenant="acme")
    stolen: list[Any] = []
    HOOKS[("batched", "b1")] = lambda ctx: shift.update(s=30.0)
    HOOKS[("batched", "b2")] = lambda ctx: time.sleep(0.6)

    def slow(ctx: StepContext) -> None:
        time.sleep(0.6)
        stolen.append(thief.advance(run.id))

    HOOKS[("batched", "b3")] = slow
    done = short.advance(run.id)
    assert stolen == [None]
    assert done is not None and done.state == RunState.COMPLETED
    assert Counter(b1=1, b2=1, b3=1, b4=1, b5=1) == CALLS
    _steps_once(runner, run.id)
