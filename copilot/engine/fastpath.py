"""PostgreSQL's one-call paths: creating a run, and a step's checkpoint (finishing or pausing with it).

Each is a server function (migration 0018_runtime) called with named arguments on a pooled
driver connection in autocommit mode, so the call is the whole transaction: one round trip,
where the same work through SQLAlchemy costs a BEGIN, one statement per write and a COMMIT.
The general paths (effects, proposals, SQLite) stay in `store` and `checkpoint`; these
commit exactly the same rows and audit events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.rows
from sqlalchemy import Engine

from audit.calls import EVENT_ARGS, EVENT_CASTS, event_params, named_call
from audit.chain import Sealed
from audit.db import autocommit_driver
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
# The lease's deadline by the database's clock, like every lease (copilot.engine.dbclock):
# the caller passes the lease's length as `seconds`, never a deadline of its own clock.


def create(
    engine: Engine, row: dict[str, Any], sealed: Sealed, *, consult: bool
) -> tuple[Run, bool] | None:
    """Insert the queued run `row` with its sealed `run.created` event: (run, created).

    The same idempotency key returns the existing run (created False). With `consult`, a
    subject with stored preferences gets None and nothing is written: the caller reads them.
    """
    params = {
        **event_params(row["tenant"], [sealed], "try"),
        "id": row["id"], "tenant": row["tenant"], "workflow": row["workflow"],
        "version": row["version"], "subject": row["subject_id"], "inputs": row["inputs"],
        "key": row["idempotency_key"], "triggered_by": row["triggered_by"],
        "principal": row["principal"], "now": row["created_at"], "holdout": row["holdout"],
        "consult": consult,
    }  # fmt: skip
    found = _call(engine, _CREATE_SQL, params)
    if found is None:
        return None
    return found, found.id == row["id"]


def step(
    engine: Engine, params: dict[str, Any], stream: str, sealed: Sequence[Sealed]
) -> Run | None:
    """Commit a step's checkpoint (see copilot_step): the run now, or None if the lease was lost."""
    try:
        return _call(engine, _STEP_SQL, {**params, **event_params(stream, sealed, "try")})
    except psycopg.errors.UniqueViolation:
        return None  # a zombie of ours already checkpointed this step


def _call(engine: Engine, sql: str, params: dict[str, Any]) -> Run | None:
    with autocommit_driver(engine) as db:
        cur = db.cursor(row_factory=psycopg.rows.dict_row)
        found = cur.execute(sql, params, prepare=True).fetchone()
    return run_from(found) if found is not None else None
