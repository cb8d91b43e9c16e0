"""PostgreSQL's one-call paths: creating a run, and a step's checkpoint (finishing or pausing with it).

Each is a server function (migration 0018_runtime) called with named arguments on a pooled
driver connection in autocommit mode, so the call is the whole transaction: one round trip,
where the same work through SQLAlchemy costs a BEGIN, one statement per write and a COMMIT.
The general paths (effects, proposals, SQLite) stay in `store` and `checkpoint`; these
commit exactly the same rows and audit events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.rows
from sqlalchemy import Engine

from audit.calls import EVENT_ARGS, EVENT_CASTS, chain_rows, event_params, named_call, sqlite_chain
from audit.chain import Sealed
from audit.db import autocommit_driver
from copilot.db.tables import runs
from copilot.engine.dbclock import PG_EPOCH
from copilot.engine.runs import Run, run_from

_CREATE_SQL = "SELECT * FROM " + named_call(
    "copilot_create",
    ("id", "tenant", "workflow", "version", "subject", "inputs", "key", "triggered_by",
     "principal", "now", "holdout", "consult", *EVENT_ARGS),
    casts=EVENT_CASTS,
)  # fmt: skip
_STEP_SQL = "SELECT * FROM " + named_call(
    "copilot_step",
    ("rid", "owner", "idx", "now", "expires", "level", "reasons", "name", "status", "output",
     "request", "attempt", "model", "prompt", "usage", "started", "to", "result", *EVENT_ARGS),
    casts=EVENT_CASTS,
).replace("p_expires => %(expires)s", f"p_expires => {PG_EPOCH} + %(seconds)s")  # fmt: skip
# Consecutive steps of a batched workflow in one call (migration 0020_batched_steps): the
# per-step columns are arrays, in step order from `idx`.
STEP_ARRAYS = ("names", "statuses", "outputs", "requests", "models", "prompts", "usages",
               "started", "finished")  # fmt: skip
_STEPS_SQL = "SELECT * FROM " + named_call(
    "copilot_steps",
    ("rid", "owner", "idx", "now", "expires", "level", "reasons", *STEP_ARRAYS, "attempt",
     "to", "result", *EVENT_ARGS),
    casts={**EVENT_CASTS, **{a: "::text[]" for a in STEP_ARRAYS},
           "started": "::float8[]", "finished": "::float8[]"},
).replace("p_expires => %(expires)s", f"p_expires => {PG_EPOCH} + %(seconds)s")  # fmt: skip
# The lease's deadline by the database's clock, like every lease (copilot.engine.dbclock):
# the caller passes the lease's length as `seconds`, never a deadline of its own clock.


def create(
    engine: Engine, row: dict[str, Any], sealed: Sealed, *, consult: bool
) -> tuple[Run, bool] | None:
    """Insert the queued run `row` with its sealed `run.created` event: (run, created).

    The same idempotency key returns the existing run (created False). With `consult`, a
    subject with stored preferences gets None and nothing is written: the caller reads them.
    """
    found = _call(engine, *create_call(row, sealed, consult=consult))
    if found is None:
        return None
    return found, found.id == row["id"]


def create_call(
    row: dict[str, Any], sealed: Sealed, *, consult: bool
) -> tuple[str, dict[str, Any]]:
    """The statement `create` runs (psycopg's named style) and its arguments."""
    params = {**event_params(row["tenant"], [sealed], "try"), **_created(row, consult),
              "id": row["id"]}  # fmt: skip
    return _CREATE_SQL, params


def _created(row: dict[str, Any], consult: bool) -> dict[str, Any]:
    """A new run's row as both dialects' create takes it (less its id's name)."""
    return {
        "tenant": row["tenant"], "workflow": row["workflow"], "version": row["version"],
        "subject": row["subject_id"], "inputs": row["inputs"], "key": row["idempotency_key"],
        "triggered_by": row["triggered_by"], "principal": row["principal"],
        "now": row["created_at"], "holdout": row["holdout"], "consult": consult,
    }  # fmt: skip


def step(
    engine: Engine, params: dict[str, Any], stream: str, sealed: Sequence[Sealed]
) -> Run | None:
    """Commit a step's checkpoint (see copilot_step): the run now, or None if the lease was lost."""
    try:
        return _call(engine, _STEP_SQL, {**params, **event_params(stream, sealed, "try")})
    except psycopg.errors.UniqueViolation:
        return None  # a zombie of ours already checkpointed this step


def steps(
    engine: Engine, params: dict[str, Any], stream: str, sealed: Sequence[Sealed]
) -> Run | None:
    """Commit consecutive steps' checkpoints (see copilot_steps; `params` has STEP_ARRAYS
    for the steps' own columns): the run now, or None if the lease was lost."""
    try:
        return _call(engine, _STEPS_SQL, {**params, **event_params(stream, sealed, "try")})
    except psycopg.errors.UniqueViolation:
        return None  # a zombie of ours already checkpointed one of these steps


# The columns by name, not `*`: a prepared `SELECT *` fails ("cached plan must not change
# result type") on every pooled connection once a migration adds a column to `runs`.
_PG_GET_SQL = f"SELECT {', '.join(c.name for c in runs.c)} FROM runs WHERE id = %(rid)s"


def pg_get(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The run's row by the driver on PostgreSQL, in autocommit (one round trip; SQLAlchemy's
    per-statement machinery costs more than the read on the lease's path)."""
    with autocommit_driver(engine) as db:
        cur = db.cursor(row_factory=psycopg.rows.dict_row)
        found: dict[str, Any] | None = cur.execute(_PG_GET_SQL, {"rid": run_id},
                                                   prepare=True).fetchone()  # fmt: skip
    return found


def _call(engine: Engine, sql: str, params: dict[str, Any]) -> Run | None:
    with autocommit_driver(engine) as db:
        cur = db.cursor(row_factory=psycopg.rows.dict_row)
        found = cur.execute(sql, params, prepare=True).fetchone()
    return run_from(found) if found is not None else None


# -- SQLite: the same one-statement paths, through a view whose triggers do the work ------
#
# SQLite has no server functions, but a statement is still a transaction: an INSERT into
# `temp.copilot_op` runs its INSTEAD OF triggers (one per kind of row) inside it, all or
# nothing. A checkpoint is one such statement of several rows: the step's row (the lease
# compare-and-set, the run's move, the step row) and then one row per audit event, which
# the trail's own view chains (audit.calls.sqlite_chain). Every write statement takes
# SQLite's write lock before it reads, so the lease check and the chain's head are read
# and written under the lock, as `BEGIN IMMEDIATE` did in the general path. A failed check
# raises in the trigger (RAISE(ABORT)) and the whole statement is undone.
#
# The view and triggers are temporary, made on each connection's first use of this path
# (with the function the chain needs): nothing is added to the database file, so no
# migration, and a process that never takes this path never sees them.

_OP_COLUMNS = (
    "op", "rid", "tenant", "workflow", "version", "subject", "inputs", "key", "triggered_by",
    "principal", "now", "holdout", "consult", "owner", "idx", "seconds", "state", "attempts",
    "level", "reasons", "name", "status", "output", "request", "attempt", "model", "prompt",
    "usage", "started", "to", "result", "decision",
    "genesis", "commitment", "body", "salt", "payload", "recorded_at", "actor_kind",
    "actor_id", "event_type",
)  # fmt: skip
_SQLITE_EPOCH = "((julianday('now') - 2440587.5) * 86400.0)"  # as copilot.engine.dbclock
LEASE_LOST = "copilot: lease lost"
NOT_OURS = "copilot: run not ours to take"
CONSULT = "copilot: subject has stored preferences"
NOT_WAITING = "copilot: run not waiting"
NO_AWAIT = "copilot: run waits on no Await"
_OP_VIEW = "CREATE TEMP VIEW IF NOT EXISTS copilot_op AS SELECT " + ", ".join(
    f"NULL AS p_{c}" for c in _OP_COLUMNS
)
_OP_TRIGGERS = (
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS copilot_op_create INSTEAD OF INSERT ON copilot_op
WHEN NEW.p_op = 'create' BEGIN
    SELECT RAISE(ABORT, '{CONSULT}') WHERE NEW.p_consult AND EXISTS (
        SELECT 1 FROM subject_preferences
        WHERE tenant = NEW.p_tenant AND subject_id = NEW.p_subject);
    INSERT INTO runs (id, tenant, workflow, version, subject_id, state, inputs,
                      idempotency_key, triggered_by, principal, created_at, updated_at,
                      queued_at, attempts, step_index, reasons, holdout)
    VALUES (NEW.p_rid, NEW.p_tenant, NEW.p_workflow, NEW.p_version, NEW.p_subject, 'queued',
            NEW.p_inputs, NEW.p_key, NEW.p_triggered_by, NEW.p_principal, NEW.p_now,
            NEW.p_now, NEW.p_now, 0, 0, NULL, NEW.p_holdout);
END""",
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS copilot_op_acquire INSTEAD OF INSERT ON copilot_op
WHEN NEW.p_op = 'acquire' BEGIN
    SELECT RAISE(ABORT, '{NOT_OURS}') WHERE NOT EXISTS (
        SELECT 1 FROM runs WHERE id = NEW.p_rid AND state = NEW.p_state
        AND attempts = NEW.p_attempts
        AND (state = 'queued' OR (state = 'running' AND (lease_expires_at < {_SQLITE_EPOCH}
                                                         OR lease_owner = NEW.p_owner))));
    UPDATE runs SET state = 'running', lease_owner = NEW.p_owner,
                    lease_expires_at = {_SQLITE_EPOCH} + NEW.p_seconds,
                    attempts = attempts + 1, updated_at = NEW.p_now,
                    level = coalesce(NEW.p_level, level),
                    reasons = coalesce(NEW.p_reasons, reasons)
    WHERE id = NEW.p_rid;
END""",
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS copilot_op_step INSTEAD OF INSERT ON copilot_op
WHEN NEW.p_op = 'step' BEGIN
    SELECT RAISE(ABORT, '{LEASE_LOST}') WHERE NOT EXISTS (
        SELECT 1 FROM runs WHERE id = NEW.p_rid AND lease_owner = NEW.p_owner
        AND state = 'running' AND step_index = NEW.p_idx);
    UPDATE runs SET step_index = NEW.p_idx + 1, updated_at = NEW.p_now,
                    state = coalesce(NEW.p_to, state),
                    lease_owner = CASE WHEN NEW.p_to IS NULL THEN lease_owner END,
                    lease_expires_at = CASE WHEN NEW.p_to IS NULL
                                            THEN {_SQLITE_EPOCH} + NEW.p_seconds END,
                    level = NEW.p_level, reasons = NEW.p_reasons,
                    result = coalesce(NEW.p_result, result)
    WHERE id = NEW.p_rid;
    INSERT INTO run_steps (run_id, idx, name, status, output, request, decision, attempt,
                           model, prompt_version, usage, started_at, finished_at)
    VALUES (NEW.p_rid, NEW.p_idx, NEW.p_name, NEW.p_status, NEW.p_output, NEW.p_request,
            NULL, NEW.p_attempt, NEW.p_model, NEW.p_prompt, NEW.p_usage, NEW.p_started,
            NEW.p_now);
END""",
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS copilot_op_resume INSTEAD OF INSERT ON copilot_op
WHEN NEW.p_op = 'resume' BEGIN
    SELECT RAISE(ABORT, '{NOT_WAITING}') WHERE NOT EXISTS (
        SELECT 1 FROM runs WHERE id = NEW.p_rid AND state = 'waiting');
    SELECT RAISE(ABORT, '{NO_AWAIT}') WHERE NOT EXISTS (
        SELECT 1 FROM run_steps WHERE run_id = NEW.p_rid AND idx = NEW.p_idx
        AND status = 'awaiting');
    UPDATE runs SET state = 'queued', updated_at = NEW.p_now, queued_at = NEW.p_now,
                    lease_owner = NULL, lease_expires_at = NULL
    WHERE id = NEW.p_rid;
    UPDATE run_steps SET status = 'resolved', decision = NEW.p_decision
    WHERE run_id = NEW.p_rid AND idx = NEW.p_idx;
END""",
    """
CREATE TEMP TRIGGER IF NOT EXISTS copilot_op_event INSTEAD OF INSERT ON copilot_op
WHEN NEW.p_op = 'event' BEGIN
    INSERT INTO audit_chain (stream, genesis, commitment, body, salt, payload, recorded_at,
                             actor_kind, actor_id, event_type, run_id, subject_id)
    VALUES (NEW.p_tenant, NEW.p_genesis, NEW.p_commitment, NEW.p_body, NEW.p_salt,
            NEW.p_payload, NEW.p_recorded_at, NEW.p_actor_kind, NEW.p_actor_id,
            NEW.p_event_type, NEW.p_rid, NEW.p_subject);
END""",
)
_OP_INDEX = {c: i for i, c in enumerate(_OP_COLUMNS)}
_EVENT_AT = [_OP_INDEX[c] for c in ("tenant", "genesis", "commitment", "body", "salt",
                                     "payload", "recorded_at", "actor_kind", "actor_id",
                                     "event_type", "rid", "subject")]  # fmt: skip
_OP_SQL: dict[int, str] = {}
_INSTALLED = "copilot.sqlite_ops"


def _op_sql(n: int) -> str:
    sql = _OP_SQL.get(n)
    if sql is None:
        marks = "(" + ", ".join("?" * len(_OP_COLUMNS)) + ")"
        sql = _OP_SQL[n] = (
            f"INSERT INTO copilot_op ({', '.join('p_' + c for c in _OP_COLUMNS)}) "
            f"VALUES {', '.join([marks] * n)}"
        )
    return sql


def _op_row(op: str, params: dict[str, Any]) -> list[Any]:
    row: list[Any] = [None] * len(_OP_COLUMNS)
    row[0] = op
    for k, v in params.items():
        row[_OP_INDEX[k]] = v
    return row


def _event_rows(stream: str, sealed: Sequence[Sealed]) -> list[Any]:
    flat: list[Any] = []
    for values in chain_rows(stream, sealed):
        row: list[Any] = [None] * len(_OP_COLUMNS)
        row[0] = "event"
        for at, v in zip(_EVENT_AT, values, strict=True):
            row[at] = v
        flat.extend(row)
    return flat


def sqlite_op(
    engine: Engine,
    op: str,
    params: dict[str, Any] | Sequence[dict[str, Any]],
    stream: str,
    sealed: Sequence[Sealed],
    *,
    then_get: bool = False,
) -> dict[str, Any] | None:
    """Run the `op` rows (`params`: one, or several in order, such as consecutive steps) and
    the events' rows as one statement (raises what a trigger raised).

    `then_get`: read the run's row after it, on the same connection (a statement of its own).
    """
    ops = [params] if isinstance(params, dict) else list(params)
    flat = [v for one in ops for v in _op_row(op, one)] + _event_rows(stream, sealed)
    raw = engine.raw_connection()
    try:
        db: Any = raw.driver_connection
        if not raw.info.get(_INSTALLED):
            sqlite_chain(db)
            db.execute(_OP_VIEW)
            for trigger in _OP_TRIGGERS:
                db.execute(trigger)
            raw.info[_INSTALLED] = True
        db.execute(_op_sql(len(ops) + len(sealed)), flat)
        return _get(db, ops[0]["rid"]) if then_get else None
    finally:
        raw.close()


def refused(exc: BaseException, message: str) -> bool:
    """Whether a trigger's RAISE(ABORT, message) caused `exc`."""
    return isinstance(exc, sqlite3.IntegrityError) and str(exc) == message


def create_sqlite(
    engine: Engine, row: dict[str, Any], sealed: Sealed, *, consult: bool
) -> bool | None:
    """`create` on SQLite: True when the run was inserted with its event, False when its
    idempotency key is taken (the caller reads that run), None as `create` (nothing written)."""
    params = {**_created(row, consult), "rid": row["id"]}
    try:
        sqlite_op(engine, "create", params, row["tenant"], [sealed])
    except sqlite3.IntegrityError as exc:
        if refused(exc, CONSULT):
            return None
        if row["idempotency_key"] is None:
            raise
        return False
    return True


_GET_SQL = "SELECT * FROM runs WHERE id = ?"


def sqlite_get(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The run's row by the driver (a read by primary key: SQLAlchemy's per-statement
    machinery costs more than the read itself on this path)."""
    raw = engine.raw_connection()
    try:
        return _get(raw.driver_connection, run_id)
    finally:
        raw.close()


def _get(db: Any, run_id: str) -> dict[str, Any] | None:
    cur = db.execute(_GET_SQL, (run_id,))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None
