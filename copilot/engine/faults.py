"""Faults that must not stall the cluster: hung steps, poison input, database errors, wake-ups.

- A step runs under a deadline (`step_deadline`): past its workflow's `step_timeout` (or
  the runtime's default) it is interrupted with `StepTimeout`, and the attempt is counted
  in `run_liveness`. Below `max_timeouts` the run goes back to the queue with backoff
  (`run.step_timed_out`); at it, the run fails `run.step_timeout`: quarantined, visible in
  `copilot runs list`, retried only by a person (`copilot runs retry ID`).
- Input that cannot be read (not JSON) or no longer fits the workflow's input model fails
  the run at once with `run.bad_input`, audited, instead of raising on every attempt.
- Which database errors are worth a retry is decided in one place, `audit.dberrors`.

The deadline is a `SIGALRM` timer, so it interrupts a step only in a process's main
thread (a `copilot worker` child, `copilot run --inline`); elsewhere the step runs
unbounded, and the lease and sweeper recover its run when the process dies.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from audit import Actor
from copilot.db.tables import run_liveness
from copilot.engine.lease import Lease
from copilot.engine.runs import Run, RunState
from copilot.engine.store import RunStore
from copilot.errors import RunStateError

# Codes of runs failed as poison: shown as quarantined; a person may retry them.
QUARANTINE = frozenset({"run.step_timeout", "run.bad_input", "run.too_many_attempts"})
# Seconds before a timed-out run is tried again (doubling per timeout).
TIMEOUT_BACKOFF = 1.0


class StepTimeout(BaseException):
    """Raised inside a step that ran past its limit.

    A BaseException, so a step's own `except Exception` does not swallow it.
    """


@contextmanager
def step_deadline(seconds: float | None) -> Iterator[None]:
    """Interrupt the body with StepTimeout after `seconds` (main thread only; None or 0: never)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(_signum: int, _frame: Any) -> None:
        raise StepTimeout(f"the step ran past its {seconds:g} s limit")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Faults:
    """What the runner does with a run that timed out, has bad input, or cannot be read."""

    def __init__(self, lease: Lease, *, max_timeouts: int = 2) -> None:
        self.lease = lease
        self.store: RunStore = lease.store
        self.max_timeouts = max_timeouts

    def timed_out(self, run: Run, step: str, seconds: float) -> tuple[Run, float | None]:
        """Count the timeout; requeue the run (and the backoff to wake it after) or fail it."""
        with self.store.engine.begin() as conn:
            count = _count_timeout(conn, run.id)
            detail = {"step": step, "seconds": seconds, "timeouts": count}
            if count >= self.max_timeouts:
                message = (
                    f"step {step!r} ran past its {seconds:g} s limit {count} times; the run is "
                    "quarantined: fix the step (or raise its workflow's step_timeout), then "
                    "`copilot runs retry` it"
                )
                error = {"code": "run.step_timeout", "message": message, **detail}
                self.lease.end_in(conn, run, RunState.FAILED, "run.failed", error=error)
                backoff = None
            else:
                self.lease.move(conn, run, RunState.QUEUED, "run.step_timed_out", detail)
                backoff = TIMEOUT_BACKOFF * 2 ** (count - 1)
        return self.store.get(run.id), backoff

    def bad_input(self, run: Run, what: str, problem: str) -> Run:
        """Fail a run whose stored input (or step output) no longer fits its model."""
        message = f"the run's stored {what} cannot be used: {problem}; trigger a new run"
        return self.lease.fail(run, "run.bad_input", message, what=what)


def retry(store: RunStore, run_id: str, *, actor: Actor, tenant: str | None = None) -> Run:
    """A person sends a failed (quarantined) run back to the queue, its timeout count reset."""
    run = store.get(run_id, tenant=tenant)
    with store.engine.begin() as conn:
        conn.execute(update(run_liveness).where(run_liveness.c.run_id == run_id).values(timeouts=0))
        moved = store.transition(
            conn, run, RunState.QUEUED, expect=(RunState.FAILED,), actor=actor,
            event="run.retried", data={"error": run.error}, error=None, attempts=0,
        )  # fmt: skip
    if not moved:
        raise RunStateError(
            f"run {run_id} is {run.state.value}; only a failed run can be retried",
            run_id=run_id,
        )
    return store.get(run_id)


def quarantined(run: Run) -> bool:
    """Whether the run failed as poison (a person looks at it, then retries or leaves it)."""
    return run.state == RunState.FAILED and (run.error or {}).get("code") in QUARANTINE


def unwoken(store: RunStore, run_ids: list[str], *, now: float, window: float) -> list[str]:
    """The runs among `run_ids` the sweeper has not woken in the last `window` s, marked woken now.

    The sweeper sends each overdue run at most one wake-up per window instead of one per
    sweep (a broker that is slow to drain, or away, would otherwise pile them up). The
    trigger's own wake-up is not marked: the hot path never writes here.
    """
    if not run_ids:
        return []
    c = run_liveness.c
    with store.engine.begin() as conn:
        recent = set(
            conn.execute(
                select(c.run_id).where(c.run_id.in_(run_ids), c.woken_at >= now - window)
            ).scalars()
        )
        wake = [r for r in run_ids if r not in recent]
        if wake:
            known = set(conn.execute(select(c.run_id).where(c.run_id.in_(wake))).scalars())
            if known:
                conn.execute(update(run_liveness).where(c.run_id.in_(known)).values(woken_at=now))
            fresh = [{"run_id": r, "woken_at": now} for r in wake if r not in known]
            if fresh:
                try:
                    with conn.begin_nested():
                        conn.execute(run_liveness.insert(), fresh)
                except IntegrityError:  # another sweeper marked them meanwhile
                    return []
    return wake


def _count_timeout(conn: Connection, run_id: str) -> int:
    """Add one to the run's timed-out attempts inside `conn`; the new count."""
    c = run_liveness.c
    moved = conn.execute(
        update(run_liveness).where(c.run_id == run_id).values(timeouts=c.timeouts + 1)
    ).rowcount
    if moved != 1:
        try:
            with conn.begin_nested():
                conn.execute(run_liveness.insert().values(run_id=run_id, timeouts=1))
        except IntegrityError:  # inserted meanwhile by another worker's timeout
            conn.execute(
                update(run_liveness).where(c.run_id == run_id).values(timeouts=c.timeouts + 1)
            )
    return int(conn.execute(select(c.timeouts).where(c.run_id == run_id)).scalar_one())


__all__ = [
    "QUARANTINE",
    "Faults",
    "StepTimeout",
    "quarantined",
    "retry",
    "step_deadline",
    "unwoken",
]
