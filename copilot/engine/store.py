"""The run store: reads and writes runs; every state change commits with its audit event."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine, Update, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from audit import Actor, AuditEvent, TransactionalAuditLog, Versions, seal
from audit.canonical import canonical
from audit.db import create_engine, ids_starting, readonly
from copilot.db.tables import run_steps, runs
from copilot.engine import fastpath
from copilot.engine.dbclock import db_epoch
from copilot.engine.runs import Run, RunState, StepRecord, acquired_event, loads_column, run_from
from copilot.errors import RunNotFoundError, RunStateError

# Built once: SQLAlchemy memoizes a statement's cache key, so reusing the object skips the
# construction and keying work that otherwise costs more than the query on this hot path.
_GET = select(runs).where(runs.c.id == bindparam("rid"))
_STEPS = select(run_steps).where(run_steps.c.run_id == bindparam("rid")).order_by(run_steps.c.idx)
_ACQUIRE = (
    update(runs)
    .where(
        runs.c.id == bindparam("rid"),
        or_(
            runs.c.state == RunState.QUEUED.value,
            and_(
                runs.c.state == RunState.RUNNING.value,
                or_(
                    runs.c.lease_expires_at < db_epoch(),
                    runs.c.lease_owner == bindparam("owner"),
                ),
            ),
        ),
    )
    .values(
        state=RunState.RUNNING.value,
        lease_owner=bindparam("owner"),
        lease_expires_at=db_epoch() + bindparam("seconds"),
        attempts=runs.c.attempts + 1,
        updated_at=bindparam("now"),
    )
    .returning(*runs.c)
)
_INSERT_RUN = insert(runs)
_TRANSITIONS: dict[tuple[Any, ...], Update] = {}


def _transition_stmt(
    to: RunState, expect: tuple[RunState, ...], owned: bool, keys: tuple[str, ...]
) -> Update:
    key = (to, expect, owned, keys)
    stmt = _TRANSITIONS.get(key)
    if stmt is None:
        c = runs.c
        conds = [c.id == bindparam("rid"), c.state.in_([s.value for s in expect])]
        if owned:
            conds.append(c.lease_owner == bindparam("owner"))
        values: dict[str, Any] = {"state": to.value, "updated_at": bindparam("now")}
        if to != RunState.RUNNING:
            values.update(lease_owner=None, lease_expires_at=None)
        values.update({k: bindparam(f"v_{k}") for k in keys})
        stmt = _TRANSITIONS[key] = update(runs).where(*conds).values(**values)
    return stmt


def _run(row: Any) -> Run:
    return run_from(row._mapping)


class RunStore:
    """Reads and writes runs; every state change commits with its audit event."""

    def __init__(
        self,
        engine: Engine,
        audit: TransactionalAuditLog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self._sqlite = engine.dialect.name == "sqlite"

    # -- reading ----------------------------------------------------------------------------

    def get(self, run_id: str, *, tenant: str | None = None) -> Run:
        """The run, or RunNotFoundError (also for another tenant's run)."""
        found: Mapping[Any, Any] | None
        if self._sqlite:
            found = fastpath.sqlite_get(self.engine, run_id)
        else:
            with readonly(self.engine.connect()) as conn:
                row = conn.execute(_GET, {"rid": run_id}).first()
            found = row._mapping if row is not None else None
        if found is None or (tenant is not None and found["tenant"] != tenant):
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        return run_from(found)

    def ids_starting(self, prefix: str, *, tenant: str, limit: int = 6) -> list[str]:
        """Up to `limit` ids of the tenant's runs that start with `prefix` (for short ids)."""
        return ids_starting(self.engine, runs, prefix, tenant=tenant, limit=limit)

    def list_runs(
        self,
        tenant: str,
        *,
        state: str | None = None,
        subject_id: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
    ) -> list[Run]:
        """Newest first (by creation, then id); `workflow` is a name, any version."""
        stmt = select(runs).where(runs.c.tenant == tenant)
        if workflow is not None:
            stmt = stmt.where(runs.c.workflow == workflow)
        if state is not None:
            stmt = stmt.where(runs.c.state == state)
        if subject_id is not None:
            stmt = stmt.where(runs.c.subject_id == subject_id)
        stmt = stmt.order_by(runs.c.created_at.desc(), runs.c.id).limit(limit)
        with readonly(self.engine.connect()) as conn:
            return [_run(r) for r in conn.execute(stmt)]

    def steps(self, run_id: str, conn: Connection | None = None) -> list[StepRecord]:
        """The run's checkpointed steps, in order (inside `conn`'s transaction if given)."""
        if conn is not None:
            return self._steps(conn, run_id)
        with readonly(self.engine.connect()) as reader:
            return self._steps(reader, run_id)

    def _steps(self, conn: Connection, run_id: str) -> list[StepRecord]:
        return [
            StepRecord(
                idx=r.idx,
                name=r.name,
                status=r.status,
                output=json.loads(r.output),
                request=loads_column(r.request),
                decision=loads_column(r.decision),
                attempt=r.attempt,
                model=r.model,
                prompt_version=r.prompt_version,
                usage=loads_column(r.usage),
                started_at=r.started_at,
                finished_at=r.finished_at,
            )
            for r in conn.execute(_STEPS, {"rid": run_id})
        ]

    # -- writing ----------------------------------------------------------------------------

    def audit_in(
        self,
        conn: Connection,
        run: Run,
        event_type: str,
        actor: Actor,
        data: dict[str, Any],
        **kw: Any,
    ) -> None:
        """Append the run's audit event inside `conn`'s transaction."""
        self.audit.append_in(conn, run.tenant, [self._event(run, event_type, actor, data, **kw)])

    @staticmethod
    def _event(
        run: Run, event_type: str, actor: Actor, data: dict[str, Any], **kw: Any
    ) -> AuditEvent:
        return AuditEvent(
            event_type=event_type,
            actor=actor,
            run_id=run.id,
            subject_id=run.subject_id,
            versions=kw.pop("versions", None) or Versions(workflow=f"{run.workflow}@{run.version}"),
            data=data,
            **kw,
        )

    def create(
        self,
        *,
        tenant: str,
        workflow: str,
        version: str,
        subject_id: str,
        inputs: dict[str, Any],
        idempotency_key: str | None,
        triggered_by: str,
        state: RunState = RunState.QUEUED,
        reasons: list[str] | None = None,
        data: dict[str, Any] | None = None,
        holdout: bool = False,
        actor: Actor | None = None,
        principal: str | None = None,
    ) -> tuple[Run, bool]:
        """Create a queued run (or a skipped one); the same idempotency key returns the same run.

        `principal` is whose request caused it (`key:<id>`, `schedule:<name>`): recorded on
        the run and in its `run.created` event, and refused as a decider of its actions.
        """
        row, run, event = self._new(tenant, workflow, version, subject_id, inputs,
                                    idempotency_key, triggered_by, state, reasons, data,
                                    holdout, actor, principal)  # fmt: skip
        if idempotency_key is not None:
            existing = self._by_key(tenant, idempotency_key)
            if existing is not None:
                return existing, False
        try:
            with self.engine.begin() as conn:
                conn.execute(_INSERT_RUN, row)
                self.audit.append_in(conn, tenant, [event])
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = self._by_key(tenant, idempotency_key)  # a concurrent trigger won
            if existing is None:
                raise
            return existing, False
        return run, True

    def create_queued(
        self, *, consult: bool, data: dict[str, Any] | None = None, **fields: Any
    ) -> tuple[Run, bool] | None:
        """`create` of a queued run in one round trip (one statement on SQLite), or None:
        then call `create`.

        `consult`: the caller still has to read the subject's preferences; a subject that
        has stored ones gets None and nothing is written.
        """
        dialect = self.engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            return None
        row, run, event = self._new(
            fields["tenant"], fields["workflow"], fields["version"], fields["subject_id"],
            fields["inputs"], fields["idempotency_key"], fields["triggered_by"],
            RunState.QUEUED, None, data, fields.get("holdout", False), fields.get("actor"),
            fields.get("principal"),
        )  # fmt: skip
        if dialect == "postgresql":
            return fastpath.create(self.engine, row, seal(event), consult=consult)
        made = fastpath.create_sqlite(self.engine, row, seal(event), consult=consult)
        if made is None:
            return None
        if made:
            return run, True
        existing = self._by_key(fields["tenant"], fields["idempotency_key"])
        if existing is None:  # pragma: no cover - a key taken is a run that exists
            raise RuntimeError("the idempotency key was taken but its run is gone")
        return existing, False

    def _new(
        self,
        tenant: str,
        workflow: str,
        version: str,
        subject_id: str,
        inputs: dict[str, Any],
        idempotency_key: str | None,
        triggered_by: str,
        state: RunState,
        reasons: list[str] | None,
        data: dict[str, Any] | None,
        holdout: bool,
        actor: Actor | None,
        principal: str | None,
    ) -> tuple[dict[str, Any], Run, AuditEvent]:
        """A new run's row, the run, and its `run.created` event."""
        now = self.clock()
        row = {
            "id": uuid.uuid4().hex, "tenant": tenant, "workflow": workflow, "version": version,
            "subject_id": subject_id, "state": state.value,
            "inputs": json.dumps(inputs, sort_keys=True), "idempotency_key": idempotency_key,
            "triggered_by": triggered_by, "principal": principal, "created_at": now,
            "updated_at": now, "queued_at": now, "attempts": 0, "step_index": 0,
            "reasons": json.dumps(reasons) if reasons else None, "holdout": holdout,
        }  # fmt: skip
        run = _run(_Row(row))
        event = self._event(
            run, "run.created",
            actor or (Actor.human(triggered_by) if triggered_by else Actor.system()),
            {"state": state.value, "inputs_sha256": _digest(inputs), "holdout": holdout,
             "principal": principal, **(data or {})},
        )  # fmt: skip
        return row, run, event

    def _by_key(self, tenant: str, key: str) -> Run | None:
        stmt = select(runs).where(runs.c.tenant == tenant, runs.c.idempotency_key == key)
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(stmt).first()
        return _run(row) if row is not None else None

    @cached_property
    def async_engine(self) -> Engine:
        """An engine whose commits do not wait for the WAL flush (PostgreSQL; else the engine).

        For transactions a database crash may lose without harm because they are redone:
        taking a lease, intermediate step checkpoints.
        """
        if self.engine.dialect.name != "postgresql":
            return self.engine
        return create_engine(
            self.engine.url.render_as_string(hide_password=False), synchronous_commit=False
        )

    def close(self) -> None:
        """Release the connections of the engine this store made for itself."""
        made = self.__dict__.get("async_engine")
        if made is not None and made is not self.engine:
            made.dispose()

    def acquire(self, run_id: str, owner: str, lease_seconds: float) -> Run | None:
        """Take the run's lease (queued, or running with an expired lease); None if not ours to run."""
        with self.engine.begin() as conn:
            taken = self.acquire_in(conn, run_id, owner, lease_seconds)
        return taken[1] if taken else None

    def run_events(
        self, run: Run, events: list[tuple[str, Actor, dict[str, Any]]]
    ) -> list[AuditEvent]:
        """(type, actor, data) triples as the run's audit events."""
        versions = Versions(workflow=f"{run.workflow}@{run.version}")
        return [
            AuditEvent(
                event_type=t,
                actor=a,
                run_id=run.id,
                subject_id=run.subject_id,
                versions=versions,
                data=d,
            )
            for t, a, d in events
        ]

    def events_in(
        self, conn: Connection, run: Run, events: list[tuple[str, Actor, dict[str, Any]]]
    ) -> None:
        """Append several audit events of the run in one call, inside `conn`'s transaction."""
        self.audit.append_in(conn, run.tenant, self.run_events(run, events))

    def acquire_in(
        self, conn: Connection, run_id: str, owner: str, lease_seconds: float, *, audit: bool = True
    ) -> tuple[Run, Run] | None:
        """`acquire` inside the caller's transaction: (before, after), or None.

        `audit=False` leaves the audit event (`acquired_event(before, owner)`) to the caller.
        """
        now = self.clock()
        row = conn.execute(_GET, {"rid": run_id}).first()
        if row is None or row.state not in (RunState.QUEUED.value, RunState.RUNNING.value):
            return None
        before = _run(row)
        params = {"rid": run_id, "now": now, "owner": owner, "seconds": lease_seconds}
        row = conn.execute(_ACQUIRE, params).first()
        if row is None:
            return None
        if audit:
            self.audit_in(conn, before, *acquired_event(before, owner))
        return before, _run(row)

    def transition(
        self,
        conn: Connection,
        run: Run,
        to: RunState,
        *,
        expect: tuple[RunState, ...],
        owner: str | None = None,
        actor: Actor,
        event: str,
        data: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        """Compare-and-set the state inside `conn`'s transaction, with its audit event."""
        now = self.clock()
        if to == RunState.QUEUED:
            values.setdefault("queued_at", now)
        stmt = _transition_stmt(to, expect, owner is not None, tuple(sorted(values)))
        params = {
            "rid": run.id,
            "now": now,
            "owner": owner,
            **{f"v_{k}": v for k, v in values.items()},
        }
        result = conn.execute(stmt, params)
        if result.rowcount != 1:
            return False
        self.audit_in(
            conn, run, event, actor, {"from": run.state.value, "to": to.value, **(data or {})}
        )
        return True

    def resume(
        self, run_id: str, decision: dict[str, Any], *, actor: Actor, tenant: str | None = None
    ) -> Run:
        """Store an outside decision for a waiting run and queue it again."""
        run = self.get(run_id, tenant=tenant)
        if self.engine.dialect.name == "sqlite":
            return self._resume_sqlite(run, decision, actor)
        with self.engine.begin() as conn:
            ok = self.transition(
                conn,
                run,
                RunState.QUEUED,
                expect=(RunState.WAITING,),
                actor=actor,
                event="run.resumed",
                data={"decision_sha256": _digest(decision)},
            )
            if not ok:
                raise self._not_waiting(run_id)
            resolved = conn.execute(
                update(run_steps)
                .where(
                    run_steps.c.run_id == run_id,
                    run_steps.c.idx == run.step_index - 1,
                    run_steps.c.status == "awaiting",
                )
                .values(status="resolved", decision=json.dumps(decision, sort_keys=True))
            )
            if resolved.rowcount != 1:  # rolled back with the transition: nothing changed
                raise _no_await(run_id)
        return self.get(run_id)

    def _resume_sqlite(self, run: Run, decision: dict[str, Any], actor: Actor) -> Run:
        """`resume` as one statement (fastpath.sqlite_op): the same checks, rows and event."""
        now = self.clock()
        event = self._event(run, "run.resumed", actor, {
            "from": run.state.value, "to": RunState.QUEUED.value,
            "decision_sha256": _digest(decision)})  # fmt: skip
        params = {"rid": run.id, "now": now, "idx": run.step_index - 1,
                  "decision": json.dumps(decision, sort_keys=True)}  # fmt: skip
        try:
            row = fastpath.sqlite_op(
                self.engine, "resume", params, run.tenant, [seal(event)], then_get=True
            )
        except sqlite3.IntegrityError as exc:
            if fastpath.refused(exc, fastpath.NOT_WAITING):
                raise self._not_waiting(run.id) from None
            if fastpath.refused(exc, fastpath.NO_AWAIT):
                raise _no_await(run.id) from None
            raise
        assert row is not None  # resumed, so it exists
        return run_from(row)

    def _not_waiting(self, run_id: str) -> RunStateError:
        state = self.get(run_id).state.value
        return RunStateError(
            f"run {run_id} is {state}, not waiting; nothing to resume", run_id=run_id
        )

    def cancel(self, run_id: str, *, actor: Actor, reason: str, tenant: str | None = None) -> Run:
        """Cancel a run that has not finished."""
        run = self.get(run_id, tenant=tenant)
        with self.engine.begin() as conn:
            live = (RunState.QUEUED, RunState.RUNNING, RunState.WAITING)
            if not self.transition(
                conn,
                run,
                RunState.CANCELLED,
                expect=live,
                actor=actor,
                event="run.cancelled",
                data={"reason": reason},
            ):
                raise RunStateError(
                    f"run {run_id} already finished; it cannot be cancelled", run_id=run_id
                )
        return self.get(run_id)

    def due(self, *, queued_before: float, limit: int = 1000) -> list[str]:
        """Runs a lost message may have stranded: queued too long, or leased and expired
        (by the database's clock, like every lease)."""
        c = runs.c
        stmt = (
            select(c.id)
            .where(
                or_(
                    and_(c.state == RunState.QUEUED.value, c.queued_at < queued_before),
                    and_(c.state == RunState.RUNNING.value, c.lease_expires_at < db_epoch()),
                )
            )
            .limit(limit)
        )
        with readonly(self.engine.connect()) as conn:
            return list(conn.execute(stmt).scalars())


class _Row:
    """Adapts a dict to the `row._mapping` shape `_run` reads."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = {
            **mapping,
            "lease_owner": None,
            "lease_expires_at": None,
            "level": None,
            "result": None,
            "error": None,
            "reasons": mapping.get("reasons"),
        }


def _no_await(run_id: str) -> RunStateError:
    return RunStateError(
        f"run {run_id} waits on approval requests, not on an Await; decide them "
        "(`copilot approvals list`) and it resumes by itself",
        run_id=run_id,
    )


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()
