"""Round trips per operation, pinned: a statement more on the hot path fails here, loudly.

Counted on the wire (PostgreSQL: libpq's protocol trace) and at the driver (SQLite), see
tests/support/roundtrips.py. The pins are exact both ways: a saving updates them too, and
the README's Benchmarks section lists them. Counts are of a warmed-up process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from audit import Actor, Query
from copilot.engine.runner import Runner
from copilot.engine.runs import RunState
from copilot.governance.consent import Preferences
from copilot.runtime import Runtime
from tests.support.kinds import POLICY
from tests.support.roundtrips import Trips, counting
from tests.support.runtime import build_runtime

REVIEWERS = frozenset({"reviewer"})
# (PostgreSQL, SQLite) round trips of each operation, warmed up. SQLite before its
# one-statement paths (copilot.engine.fastpath): trigger 6, advance 42, run 48, per step 6,
# pause 30, resume 8, resume advance 23, decide 19 and approval advance 40 (23 and 41 as
# first pinned: the helper counted the approval tables' own triggers as statements).
PINS: dict[str, tuple[int, int]] = {
    "trigger": (1, 1),
    "advance_5_steps": (7, 9),
    "run_5_steps": (8, 10),
    "per_step": (1, 1),
    "pause_advance": (5, 7),
    "resume": (7, 3),
    "resume_advance": (5, 7),
    "approval_decide": (16, 19),
    "approval_advance": (25, 29),  # one action: the auto-approved one ran when the run parked
    # durability="batched": the five steps commit with the completion, one call
    "advance_5_steps_batched": (3, 5),
    "run_5_steps_batched": (4, 6),
    "pause_advance_batched": (3, 5),
}


@pytest.fixture
def rt(engine: Engine, tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(engine, tmp_path, woken=[], policy=POLICY)
    yield runtime
    runtime.runs.close()


def _count(fn: Callable[[], Any]) -> tuple[Trips, Any]:
    with counting() as trips:
        out = fn()
    return trips, out


def _measure(runner: Runner, rt: Runtime, i: int) -> dict[str, Trips]:
    """One of each operation, counted."""
    got: dict[str, Trips] = {}
    got["trigger"], (run, _) = _count(lambda: runner.trigger("plain", f"a-{i}", tenant="acme"))
    got["advance_5_steps"], done = _count(lambda: runner.advance(run.id))
    assert done.state == RunState.COMPLETED
    run3, _ = runner.trigger("plain_three", f"b-{i}", tenant="acme")
    three, done = _count(lambda: runner.advance(run3.id))
    assert done.state == RunState.COMPLETED
    per_step = Trips(got["advance_5_steps"].statements[len(three.statements) :])
    per_step.statements = per_step.statements[: (len(per_step.statements)) // 2]
    got["per_step"] = per_step
    paused, _ = runner.trigger("plain_paused", f"c-{i}", tenant="acme")
    got["pause_advance"], waiting = _count(lambda: runner.advance(paused.id))
    assert waiting.state == RunState.WAITING
    got["resume"], _ = _count(
        lambda: rt.runs.resume(paused.id, {"approved": True}, actor=Actor.human("maya"))
    )
    got["resume_advance"], done = _count(lambda: runner.advance(paused.id))
    assert done.state == RunState.COMPLETED
    proposing, _ = runner.trigger("proposing", f"d-{i}", tenant="acme", triggered_by="app:crm")
    assert runner.advance(proposing.id).state == RunState.WAITING
    assert rt.gate is not None
    email = next(r for r in rt.gate.of_run(proposing.id) if r.status == "pending")
    got["approval_decide"], _ = _count(
        lambda: rt.gate.decide(
            email.id,
            reviewer="maya",
            roles=REVIEWERS,
            decision="approve",
            payload_hash=email.payload_hash,
        )
    )
    got["approval_advance"], done = _count(lambda: runner.advance(proposing.id))
    assert done.state == RunState.COMPLETED
    got["trigger_batched"], (run, _) = _count(
        lambda: runner.trigger("plain_batched", f"e-{i}", tenant="acme")
    )
    got["advance_5_steps_batched"], done = _count(lambda: runner.advance(run.id))
    assert done.state == RunState.COMPLETED and done.step_index == 5
    paused, _ = runner.trigger("paused_batched", f"f-{i}", tenant="acme")
    got["pause_advance_batched"], waiting = _count(lambda: runner.advance(paused.id))
    assert waiting.state == RunState.WAITING and waiting.step_index == 3
    return got


def test_round_trips_per_operation_are_pinned(rt: Runtime, db_url: str) -> None:
    """Given a warmed-up runtime, each operation costs exactly its pinned round trips."""
    runner = rt.runner
    for i in range(6):  # warm up: pools filled, statements prepared on every connection
        _measure(runner, rt, i)
    got = _measure(runner, rt, 99)
    got["run_5_steps"] = Trips(got["trigger"].statements + got["advance_5_steps"].statements)
    got["run_5_steps_batched"] = Trips(
        got.pop("trigger_batched").statements + got["advance_5_steps_batched"].statements
    )
    col = 0 if db_url.startswith("postgresql") else 1
    counts = {k: t.count for k, t in got.items()}
    assert counts == {k: v[col] for k, v in PINS.items()}, "\n".join(
        f"{k}: {t}" for k, t in got.items() if t.count != PINS[k][col]
    )


def test_racing_triggers_with_one_key_make_one_run_with_one_created_event(rt: Runtime) -> None:
    """Given 8 threads triggering with the same idempotency key at once (the one-call create
    on PostgreSQL, the general path on SQLite), one run exists and one `run.created` event."""
    barrier = threading.Barrier(8)
    got: list[tuple[str, bool]] = []

    def trigger() -> None:
        barrier.wait()
        run, created = rt.runner.trigger("plain", "acct-1", tenant="acme", idempotency_key="k")
        got.append((run.id, created))

    threads = [threading.Thread(target=trigger) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({rid for rid, _ in got}) == 1 and sum(c for _, c in got) == 1
    rt.audit.settle("acme")
    created = rt.audit.query("acme", Query(event_type="run.created", limit=100))
    assert [e.run_id for e in created] == [got[0][0]]


def test_a_subject_with_stored_preferences_is_read_and_its_refused_run_skipped(
    rt: Runtime,
) -> None:
    """Given a snoozed subject, the one-call create writes nothing and the trigger reads the
    preferences: the run is skipped with its reason; a subject without them is queued."""
    rt.consent.set(
        Preferences(tenant="acme", subject_id="acct-9", opt_out_workflows=("plain",)),
        actor=Actor.human("acct-9"),
    )
    skipped, _ = rt.runner.trigger("plain", "acct-9", tenant="acme")
    assert skipped.state == RunState.SKIPPED and skipped.reasons == ["opted_out:plain"]
    queued, _ = rt.runner.trigger("plain", "acct-8", tenant="acme")
    assert queued.state == RunState.QUEUED
    assert rt.runner.advance(queued.id).state == RunState.COMPLETED
