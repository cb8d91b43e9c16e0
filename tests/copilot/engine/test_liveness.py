"""Liveness in one process, on SQLite and PostgreSQL: exactly-once records under every freeze
point, poison input failed at once, hung steps quarantined, wake-ups deduplicated.

The cluster-level faults (frozen workers, read-only episodes, a broker that is away) are in
tests/copilot/test_faults_cluster.py, on servers of their own.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from audit import Query
from audit.db import create_engine
from copilot.db.tables import outbox, receipts, runs
from copilot.engine.executor import Action, Executor, Receipt
from copilot.engine.faults import quarantined, retry
from copilot.engine.runs import RunState
from copilot.engine.store import RunStore
from copilot.errors import RunStateError
from copilot.runtime import Runtime
from tests.support import fault_flows
from tests.support.cli import cli
from tests.support.runtime import build_runtime

MODULES = "tests.support.flows,tests.support.fault_flows"


class Pausing:
    """The real outbox executor, paused once at `point` (before or after it acts)."""

    name = "outbox"

    def __init__(self, inner: Executor, point: str) -> None:
        self.inner, self.point = inner, point
        self.arrived, self.go = threading.Event(), threading.Event()

    def _pause(self, point: str) -> None:
        if self.point == point and not self.arrived.is_set():
            self.arrived.set()
            self.go.wait(30)

    def execute(self, action: Action) -> Receipt:
        self._pause("before_act")
        receipt = self.inner.execute(action)
        self._pause("after_act")
        return receipt


def _runtime(db_url: str, tmp_path: Path, name: str, woken: list[str], **kw: Any) -> Runtime:
    rt = build_runtime(db_url, tmp_path / name, woken=woken, workflow_modules=MODULES, **kw)
    rt.runner.lease.owner = f"worker-{name}"  # two workers in one process: two owners
    return rt


def _counts(rt: Runtime, run_id: str) -> tuple[int, int, int]:
    """(approval.executed in the trail, outbox rows, receipts) of one run."""
    rt.audit.settle("acme")
    executed = rt.audit.query("acme", Query(run_id=run_id, event_type="approval.executed"))
    with rt.engine.connect() as conn:
        rows = conn.execute(select(func.count()).where(outbox.c.run_id == run_id)).scalar_one()
        kept = conn.execute(select(func.count()).where(receipts.c.run_id == run_id)).scalar_one()
    return len(executed), int(rows), int(kept)


@pytest.mark.parametrize("point", ["before_act", "after_act", "after_record"])
def test_a_zombie_frozen_at_any_point_never_makes_the_trail_say_an_action_ran_twice(
    db_url: str, tmp_path: Path, point: str
) -> None:
    """Given worker A frozen around an approved action's execution past its lease, when B takes
    the run over and completes it and A then resumes, the trail records one execution: its
    count equals the outbox's rows and the receipts."""
    woken: list[str] = []
    a = _runtime(db_url, tmp_path, "a", woken, lease_seconds=1.0)
    b = _runtime(db_url, tmp_path, "b", woken, lease_seconds=1.0)
    pausing = Pausing(a.runner.executors["outbox"], point)
    a.runner.executors["outbox"] = pausing  # the gate holds the runner's mapping
    run, _ = a.runner.trigger("noting_slow", "acct-1", tenant="acme")
    gate = (pausing.arrived, pausing.go)
    if point == "after_record":
        fault_flows.after_record[run.id] = gate
    zombie = threading.Thread(target=lambda: _swallow(a, run.id))
    zombie.start()
    try:
        assert gate[0].wait(20), "worker A never reached the freeze point"
        time.sleep(1.3)  # A's lease expires while it is frozen
        done = b.runner.advance(run.id)
        assert done is not None and done.state == RunState.COMPLETED, done
    finally:
        gate[1].set()
        zombie.join(30)
        fault_flows.after_record.pop(run.id, None)
    assert not zombie.is_alive()
    assert a.runs.get(run.id).state == RunState.COMPLETED
    assert _counts(a, run.id) == (1, 1, 1)
    for rt in (a, b):
        rt.close()


def _swallow(rt: Runtime, run_id: str) -> None:
    # A zombie's late writes may fail; what matters is what it recorded.
    with contextlib.suppress(Exception):
        rt.runner.advance(run_id)


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"subject_id": "acct-1", "delay_ms": "x"}), "delay_ms"),
    ],
)
def test_stored_input_that_cannot_be_read_or_validated_fails_the_run_at_once(
    db_url: str, tmp_path: Path, stored: str, problem: str
) -> None:
    """Given a queued run whose stored input is not JSON or no longer fits the input model,
    its first advance fails it with `run.bad_input`, audited: no retries, no raising."""
    woken: list[str] = []
    rt = _runtime(db_url, tmp_path, "a", woken)
    run, _ = rt.runner.trigger("five_steps", "acct-1", tenant="acme")
    with rt.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run.id).values(inputs=stored))
    ended = rt.runner.advance(run.id)
    assert ended is not None and ended.state == RunState.FAILED
    assert ended.error is not None and ended.error["code"] == "run.bad_input"
    assert problem in ended.error["message"] and quarantined(ended)
    rt.audit.settle("acme")
    failed = rt.audit.query("acme", Query(run_id=run.id, event_type="run.failed"))
    assert [e.data["error"]["code"] for e in failed] == ["run.bad_input"]
    assert rt.runner.advance(run.id) is None  # nothing left to take
    rt.close()


def test_a_step_that_never_returns_is_interrupted_and_then_quarantined_then_retried_by_a_person(
    db_url: str, tmp_path: Path
) -> None:
    """Given a step under a 1 s limit that sleeps forever, each attempt is interrupted and
    counted; at the second the run fails `run.step_timeout`, shown quarantined; a person's
    retry sends it back to the queue, audited."""
    woken: list[str] = []
    rt = _runtime(db_url, tmp_path, "a", woken)
    run, _ = rt.runner.trigger("hanging", "acct-1", tenant="acme")
    began = time.monotonic()
    first = rt.runner.advance(run.id)
    assert first is not None and first.state == RunState.QUEUED  # timed out once: back in line
    ended = rt.runner.advance(run.id)
    took = time.monotonic() - began
    assert ended is not None and ended.state == RunState.FAILED and quarantined(ended)
    assert ended.error is not None and ended.error["code"] == "run.step_timeout"
    assert ended.error["timeouts"] == 2 and 2.0 <= took < 10, took
    assert woken.count(run.id) == 2  # the trigger's, and the backoff after the first timeout
    again = retry(rt.runs, run.id, actor=_person())
    assert again.state == RunState.QUEUED and again.error is None
    rt.audit.settle("acme")
    kinds = [e.event_type for e in rt.audit.query("acme", Query(run_id=run.id))]
    assert kinds.count("run.step_timed_out") == 1 and kinds[-1] == "run.retried"
    rt.close()


def _person() -> Any:
    from audit import Actor

    return Actor.human("ana")


def test_the_sweeper_sends_an_overdue_run_one_wake_up_per_window_not_one_per_sweep(
    db_url: str, tmp_path: Path
) -> None:
    """Given three runs queued past the grace period, five sweeps in a row send each one
    wake-up (plus the trigger's), not five."""
    woken: list[str] = []
    rt = _runtime(db_url, tmp_path, "a", woken, sweep_grace=0)
    ids = [rt.runner.trigger("five_steps", f"acct-{i}", tenant="acme")[0].id for i in range(3)]
    time.sleep(0.05)
    for _ in range(5):
        rt.sweeper.sweep()
    assert sorted(woken) == sorted(ids * 2)
    rt.close()


def test_runs_list_shows_a_quarantined_run_and_runs_retry_queues_it_again(tmp_path: Path) -> None:
    """`copilot runs list` names the code of a quarantined run; `copilot runs retry` queues it."""
    home = tmp_path / "home"
    woken: list[str] = []
    rt = build_runtime(f"sqlite:///{home}/copilot.db", home, woken=woken, workflow_modules=MODULES)
    run, _ = rt.runner.trigger("five_steps", "acct-1", tenant="default")
    with rt.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run.id).values(inputs="{"))
    rt.runner.advance(run.id)
    rt.close()
    env = {"COPILOT_WORKFLOW_MODULES": MODULES}
    listed = cli(home, "runs", "list", **env)
    assert listed.returncode == 0 and "quarantined (run.bad_input)" in listed.stdout, listed
    retried = cli(home, "runs", "retry", run.id, "--as", "ana", "--json", **env)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["state"] == "queued"
    with pytest.raises(RunStateError, match="only a failed run can be retried"):
        retry(
            RunStore(create_engine(f"sqlite:///{home}/copilot.db"), None), run.id, actor=_person()
        )  # type: ignore[arg-type]


def test_the_step_timeout_example_in_the_liveness_docs_runs_as_shown() -> None:
    """docs/examples/liveness/step_timeout.py, run as the page says, prints what it claims."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    page = (root / "docs" / "liveness.md").read_text()
    assert '--8<-- "docs/examples/liveness/step_timeout.py"' in page
    done = subprocess.run(
        [sys.executable, "docs/examples/liveness/step_timeout.py"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "failed run.step_timeout"
