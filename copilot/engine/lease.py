"""A worker's hold on a run: taking the lease, renewing it with each checkpoint, ending the run.

Only the lease holder moves a running run (`move`, `end_in`, `fail`, `requeue`); every
move re-checks the lease in the same statement, so a worker that lost its lease (it
stalled past `seconds`, another took over) changes nothing. Taking the lease on the first
advance also assesses the run's context and pins its degradation level for later advances.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
import psycopg.rows
from sqlalchemy import Connection, bindparam, update

from audit import Actor, genesis, seal
from audit.chain import Sealed
from audit.db import autocommit_driver
from copilot.db.tables import runs
from copilot.engine import fastpath
from copilot.engine.dbclock import PG_EPOCH, db_epoch
from copilot.engine.runs import Run, RunState, StepRecord, acquired_event, run_from
from copilot.engine.store import RunStore
from copilot.errors import UnknownWorkflowError
from copilot.governance.sources import ContextSource, SignalValue
from copilot.workflow.definition import Workflow
from copilot.workflow.degradation import Degradation, Level, assess
from copilot.workflow.registry import Registry

_RENEW = (
    update(runs)
    .where(
        runs.c.id == bindparam("rid"),
        runs.c.lease_owner == bindparam("owner"),
        runs.c.state == RunState.RUNNING.value,
        runs.c.step_index == bindparam("idx"),
    )
    .values(
        step_index=bindparam("next"),
        updated_at=bindparam("now"),
        lease_expires_at=db_epoch() + bindparam("seconds"),
        level=bindparam("level"),
        reasons=bindparam("reasons"),
    )
)
_ASSESSED = (
    update(runs)
    .where(runs.c.id == bindparam("rid"))
    .values(level=bindparam("level"), reasons=bindparam("reasons"))
)
# Named arguments: a parameter reordered in the migration fails loudly instead of shifting.
_PG_ACQUIRE = (
    "SELECT * FROM copilot_acquire(p_rid => %(rid)s, p_owner => %(owner)s, "
    f"p_now => {PG_EPOCH}, p_expires => {PG_EPOCH} + %(seconds)s, "
    "p_state => %(state)s, p_attempts => %(attempts)s, "
    "p_level => %(level)s, p_reasons => %(reasons)s, p_stream => %(stream)s, "
    "p_genesis => %(genesis)s, p_bodies => %(bodies)s, p_recorded_at => %(recorded_at)s, "
    "p_actor_kind => %(actor_kind)s, p_actor_id => %(actor_id)s, "
    "p_event_type => %(event_type)s, p_subject => %(subject)s)"
)


@dataclass(frozen=True)
class Taken:
    """A run this worker now holds, and what its steps go on (no workflow: it ended at once)."""

    run: Run
    workflow: Workflow | None = None
    degradation: Degradation | None = None
    values: Mapping[str, SignalValue] = field(default_factory=dict)
    previous: list[StepRecord] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        """The run ended as it was taken (failed or skipped): no step is due."""
        return self.workflow is None or self.degradation is None


class Lease:
    """Takes, renews and releases runs' leases for one worker (`owner`)."""

    def __init__(self, store: RunStore, owner: str, seconds: float) -> None:
        self.store = store
        self.owner = owner
        self.seconds = seconds
        self.pg = store.engine.dialect.name == "postgresql"
        self.sqlite = store.engine.dialect.name == "sqlite"

    def take(
        self, run_id: str, registry: Registry, context: ContextSource, *, max_attempts: int
    ) -> Taken | None:
        """Take the lease and, on the first advance, assess the context: one transaction.

        None when the run is not ours to take. It commits without waiting for the WAL flush
        unless it ends the run: a database crash that loses it leaves the run queued, to be
        taken again.
        """
        if self.pg or self.sqlite:
            fast = self._take_fast(run_id, registry, context, max_attempts)
            if fast is False:
                return None
            if fast is not None:
                return fast
        with self.store.async_engine.begin() as conn:
            taken = self.store.acquire_in(conn, run_id, self.owner, self.seconds, audit=False)
            if taken is None:
                return None
            before, run = taken
            events = [acquired_event(before, self.owner)]
            if run.attempts > max_attempts:
                self.store.events_in(conn, run, events)
                message = (
                    f"the run was taken {run.attempts} times without finishing; see its "
                    "steps and the worker logs"
                )
                self.end_in(conn, run, RunState.FAILED, "run.failed",
                            error={"code": "run.too_many_attempts", "message": message})  # fmt: skip
                return Taken(run)
            try:
                wf = registry.get(run.workflow, run.version)
            except UnknownWorkflowError:
                self.store.events_in(conn, run, events)
                message = (
                    f"{run.workflow}@{run.version} is no longer registered; redeploy it "
                    "alongside the new version until its runs finish, or cancel them"
                )
                self.end_in(conn, run, RunState.FAILED, "run.failed",
                            error={"code": "workflow.version_gone", "message": message})  # fmt: skip
                return Taken(run)
            values = context.fetch(run.tenant, run.subject_id, [n.name for n in wf.signals])
            assessed = assess(wf.signals, values, self.store.clock())
            if run.level is not None:  # pinned at the first advance
                assessed = _pinned(assessed, run)
            elif assessed.level == Level.NONE:
                self.store.events_in(conn, run, events)
                self.end_in(conn, run, RunState.SKIPPED, "run.skipped", level="none",
                            reasons=list(assessed.reasons))  # fmt: skip
                return Taken(run, wf, None, values)
            else:
                conn.execute(_ASSESSED, {"rid": run.id, "level": assessed.level.value,
                                         "reasons": json.dumps(list(assessed.reasons))})  # fmt: skip
                events.append(self._assessed_event(assessed))
            self.store.events_in(conn, run, events)
            previous = self.store.steps(run.id, conn) if run.step_index else []
        return Taken(run, wf, assessed, values, previous)

    def _take_fast(
        self, run_id: str, registry: Registry, context: ContextSource, max_attempts: int
    ) -> Taken | Literal[False] | None:
        """`take` in two round trips (read, then copilot_acquire) for the common case; on
        SQLite three statements (read, the acquire with its events, read the run taken).

        Returns False when the run is not ours to take, None to fall back to the general
        path (the workflow is gone, or there is nothing to go on: the run ends there).
        """
        row: Mapping[Any, Any] | None
        if self.sqlite:
            row = fastpath.sqlite_get(self.store.engine, run_id)
        else:
            row = fastpath.pg_get(self.store.engine, run_id)
        if row is None or row["state"] not in (RunState.QUEUED.value, RunState.RUNNING.value):
            return False
        before = run_from(row)
        if before.attempts >= max_attempts:
            return None  # the general path fails it
        try:
            wf = registry.get(before.workflow, before.version)
        except UnknownWorkflowError:
            return None
        values = context.fetch(before.tenant, before.subject_id, [n.name for n in wf.signals])
        assessed = assess(wf.signals, values, self.store.clock())
        events = [acquired_event(before, self.owner)]
        level = reasons = None
        if before.level is not None:
            assessed = _pinned(assessed, before)
        elif assessed.level == Level.NONE:
            return None
        else:
            level, reasons = assessed.level.value, json.dumps(list(assessed.reasons))
            events.append(self._assessed_event(assessed))
        sealed = [seal(e) for e in self.store.run_events(before, events)]
        if self.sqlite:
            return self._take_sqlite(before, sealed, level, reasons, wf, assessed, values)
        params = {  # the lease's times are the database's (copilot.engine.dbclock)
            "rid": run_id, "owner": self.owner, "seconds": self.seconds,
            "state": before.state.value, "attempts": before.attempts, "level": level,
            "reasons": reasons, "stream": before.tenant, "genesis": genesis(before.tenant),
            "bodies": [s.body for s in sealed], "recorded_at": [s.recorded_at for s in sealed],
            "actor_kind": [s.event.actor.kind.value for s in sealed],
            "actor_id": [s.event.actor.id for s in sealed],
            "event_type": [s.event.event_type for s in sealed], "subject": before.subject_id,
        }  # fmt: skip
        with autocommit_driver(self.store.engine) as db:
            cur = db.cursor(row_factory=psycopg.rows.dict_row)
            taken = cur.execute(_PG_ACQUIRE, params, prepare=True).fetchone()
        if taken is None:
            return False
        run = run_from(taken)
        previous = self.store.steps(run.id) if run.step_index else []
        return Taken(run, wf, assessed, values, previous)

    def _take_sqlite(
        self,
        before: Run,
        sealed: list[Sealed],
        level: str | None,
        reasons: str | None,
        wf: Workflow,
        assessed: Degradation,
        values: Mapping[str, SignalValue],
    ) -> Taken | Literal[False]:
        """The acquire as one statement (fastpath.sqlite_op), then the run as taken."""
        params = {
            "rid": before.id, "owner": self.owner, "seconds": self.seconds,
            "now": self.store.clock(), "state": before.state.value,
            "attempts": before.attempts, "level": level, "reasons": reasons,
            "subject": before.subject_id,
        }  # fmt: skip
        try:
            row = fastpath.sqlite_op(
                self.store.engine, "acquire", params, before.tenant, sealed, then_get=True
            )
        except sqlite3.IntegrityError as exc:
            if fastpath.refused(exc, fastpath.NOT_OURS):
                return False
            raise
        assert row is not None  # taken, so it exists
        run = run_from(row)
        previous = self.store.steps(run.id) if run.step_index else []
        return Taken(run, wf, assessed, values, previous)

    def _assessed_event(self, assessed: Degradation) -> tuple[str, Actor, dict[str, Any]]:
        data = {
            "level": assessed.level.value,
            "reasons": list(assessed.reasons),
            "coverage": assessed.coverage,
        }
        return "run.context_assessed", Actor.system(self.owner), data

    def renew_in(
        self,
        conn: Connection,
        run: Run,
        idx: int,
        next_idx: int,
        now: float,
        degradation: Degradation,
    ) -> bool:
        """Move the run from step `idx` to `next_idx` and renew the lease, if it is still ours
        (else roll back: another worker owns the run now)."""
        moved = conn.execute(
            _RENEW,
            {
                "rid": run.id,
                "owner": self.owner,
                "idx": idx,
                "next": next_idx,
                "now": now,
                "seconds": self.seconds,
                "level": degradation.level.value,
                "reasons": json.dumps(list(degradation.reasons)),
            },
        ).rowcount
        if moved != 1:
            conn.rollback()
        return moved == 1

    def move(
        self,
        conn: Connection,
        run: Run,
        to: RunState,
        event: str,
        data: dict[str, Any],
        **values: Any,
    ) -> bool:
        """A transition of a run this worker holds (running, leased by us), with its audit event."""
        return self.store.transition(
            conn,
            run,
            to,
            expect=(RunState.RUNNING,),
            owner=self.owner,
            actor=Actor.system(self.owner),
            event=event,
            data=data,
            **values,
        )

    def end_in(self, conn: Connection, run: Run, to: RunState, event: str, **fields: Any) -> None:
        """End a run inside `conn`, durably: others act on terminal states."""
        if self.pg:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = on")
        values: dict[str, Any] = {}
        if "error" in fields:
            values["error"] = json.dumps(fields["error"], sort_keys=True)
        if "reasons" in fields:
            values.update(level=fields.get("level"), reasons=json.dumps(fields["reasons"]))
        self.move(conn, run, to, event, dict(fields), **values)

    def fail(self, run: Run, code: str, message: str, **details: Any) -> Run:
        """Fail the run with a stable code (and the step, where one failed)."""
        error = {"code": code, "message": message, **details}
        with self.store.engine.begin() as conn:
            self.move(conn, run, RunState.FAILED, "run.failed", {"error": error},
                      error=json.dumps(error, sort_keys=True))  # fmt: skip
        return self.store.get(run.id)

    def requeue(self, run_id: str, reason: str) -> None:
        """Hand a run back after a transient fault (running → queued), for a retry."""
        run = self.store.get(run_id)
        with self.store.engine.begin() as conn:
            self.move(conn, run, RunState.QUEUED, "run.requeued", {"reason": reason})


def _pinned(assessed: Degradation, run: Run) -> Degradation:
    """The ladder as the run's first advance set it: later advances see the same level."""
    return assessed.model_copy(
        update={"level": Level(run.level or "full"), "reasons": tuple(run.reasons)}
    )
