"""PostgreSQL's side of the SQL store: appends and settles through the server functions.

PostgreSQL commits many transactions at once (group commit); a chain lock held across
each commit's WAL flush would forfeit that. So the chain is extended by a server-side
function (see migration 0001) that *tries* the stream's advisory lock. When it is free,
the function chains any queued events and then the new ones; a standalone append commits
that without waiting for the flush, releasing the lock at once, and then waits for
durability with a flushing commit of its own outside the lock before it reports success
(the WAL is sequential: nothing chained after an entry can survive a crash that entry did
not); the two are pipelined, one round trip. When the lock is taken, the event goes to
`audit_pending`, durable with the caller's commit, and the next lock holder chains it.
`settle` chains the queue on demand and the sweeper settles idle streams: a bounded
merge delay, as in Certificate Transparency logs (Trillian's sequencer), with the
sequencing done by the writers themselves.

The functions are called with named arguments (`p_stream => ...`), so a migration that
reorders or renames a parameter fails the call loudly instead of shifting every value.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, select
from sqlalchemy.exc import OperationalError

from audit.calls import EVENT_CASTS, EVENT_COLUMNS, event_params, named_call
from audit.chain import Sealed, genesis
from audit.db import _driver, autocommit_driver, discard_if_spoiled, driver_of, readonly
from audit.dberrors import sqlstate
from audit.model import AppendResult
from audit.stores.sql.tables import COLUMNS, entries, link_rows, payloads
from audit.verify import INDEX_COLUMNS, Row

_EVENT = EVENT_COLUMNS
_ARRAYS = EVENT_CASTS
APPEND_SQL = "SELECT o_seq, o_hash, o_status FROM " + named_call(
    "audit_append",
    ("stream", "genesis", "mode", "commitments", "bodies", "salts", "payloads", *_EVENT, "keys"),
    casts=_ARRAYS,
)
APPEND_ONE_SQL = "SELECT o_seq, o_hash, o_status FROM " + named_call(
    "audit_append_one",
    ("stream", "genesis", "mode", "commitment", "body", "salt", "payload", *_EVENT, "key"),
)
SETTLE_SQL = "SELECT " + named_call("audit_settle", ("stream", "genesis", "durable", "wait"))
DRAIN_SQL = "SELECT " + named_call("audit_drain", ("stream", "genesis"))
HEAD_SQL = "SELECT seq, hash FROM audit_entries WHERE stream = %s ORDER BY seq DESC LIMIT 1"
# A transactional logical message writes WAL, so this statement's synchronous commit
# flushes the WAL up to and past every earlier (asynchronous) commit. Merely taking an xid
# is not enough: a transaction that wrote no WAL commits without flushing.
FLUSH_SQL = "SELECT pg_logical_emit_message(true, 'copilot.flush', '')"
# A standalone append remembers (a session setting, which outlives its commit) whether it
# chained with an asynchronous commit; the statement after it flushes only then: a queued
# or duplicate result committed synchronously or wrote nothing, and a second flushing
# commit would only cost the disk another flush.
_FLAG = "copilot.audit_unflushed"
_NOTE_SQL = (
    "WITH r AS ({append}) SELECT r.o_seq, r.o_hash, r.o_status, "
    f"set_config('{_FLAG}', bool_or(r.o_status = 'chained') OVER ()::text, false) FROM r"
)
FLUSH_IF_SQL = (
    f"SELECT CASE WHEN current_setting('{_FLAG}', true) = 'true' "
    "THEN pg_logical_emit_message(true, 'copilot.flush', '') END"
)
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
# How long a settle waits for the chain lock before readers go on with what is chained
# (COPILOT_AUDIT_SETTLE_WAIT): long enough for a busy holder, short of a frozen one's hang.
SETTLE_WAIT = 10.0
LOCK_NOT_AVAILABLE = "55P03"
# A standalone append of this many events chains in place under the lock (one commit for
# the batch); smaller ones queue and settle, so no one holds the lock across a WAL flush.
INLINE_BATCH = 32


def append_in(
    conn: Connection, stream: str, sealed: Sequence[Sealed], *, wait: bool
) -> list[AppendResult]:
    """Append inside `conn`'s transaction: one call of `audit_append` (see the store)."""
    # On the driver, prepared: every state change appends its event here, and SQLAlchemy's
    # per-statement machinery would cost more CPU than the call itself.
    sql, params = call_in(stream, sealed, wait=wait)
    rows = driver_of(conn).execute(sql, params, prepare=True).fetchall()
    return results(stream, rows)


def call_in(stream: str, sealed: Sequence[Sealed], *, wait: bool) -> tuple[str, dict[str, object]]:
    """The statement `append_in` runs (psycopg's named style) and its arguments: for a caller
    that runs the transaction on a driver of its own. Its rows go to `results`. One event
    (the usual case) goes through the scalar function, which spares adapting eleven arrays."""
    mode = "wait" if wait else "try"
    if len(sealed) == 1:
        return APPEND_ONE_SQL, _one_params(stream, sealed[0], mode)
    return APPEND_SQL, event_params(stream, sealed, mode)


def results(stream: str, rows: Sequence[Sequence[Any]]) -> list[AppendResult]:
    """`call_in`'s rows (o_seq, o_hash, o_status) as results."""
    return [_result(stream, *r) for r in rows]


def append_standalone(engine: Engine, stream: str, sealed: Sequence[Sealed]) -> list[AppendResult]:
    """Append in an autocommit statement of our own; returns once the events are durable.

    The hot path: one statement on a pooled driver connection. Python per append costs as
    much CPU as the database does here, so SQLAlchemy's per-statement machinery is left
    out (there is no ORM anywhere on this path).
    """
    if len(sealed) >= INLINE_BATCH:
        return _append_batch(engine, stream, sealed)
    with autocommit_driver(engine) as dbapi:
        if len(sealed) == 1:
            sql, params = APPEND_ONE_SQL, _one_params(stream, sealed[0])
        else:
            sql, params = APPEND_SQL, event_params(stream, sealed, "try_async")
        # Chained inline, the append commits asynchronously, releasing the chain lock
        # without waiting for the WAL flush; the flush statement after it writes WAL, so
        # its (synchronous) commit flushes the WAL up to and including our append: only
        # then is the append acknowledged, and flushes group-commit in parallel. Both go
        # in one pipeline, each its own transaction (a Sync between them): one round trip.
        # (A `pending` or duplicate result needs no flush, and gets none: see _NOTE_SQL.)
        # A `pending` result was queued behind a lock holder, durable with our commit:
        # the next append that takes the lock chains the queue first thing, and the
        # sweeper settles what an idle stream leaves behind. A bounded merge delay, as
        # in Certificate Transparency logs, instead of every writer waiting in line.
        with dbapi.pipeline() as pipeline:
            cur = dbapi.execute(_NOTE_SQL.format(append=sql), params, prepare=True)
            _sync(pipeline)
            dbapi.execute(FLUSH_IF_SQL, prepare=True)
        return [_result(stream, *r[:3]) for r in cur.fetchall()]


def _sync(pipeline: Any) -> None:
    """End the pipeline's implicit transaction here, without waiting for its results."""
    enqueue = getattr(pipeline, "_enqueue_sync", None)  # psycopg 3.1+: queues a Sync
    if enqueue is not None:
        enqueue()
    else:  # pragma: no cover - a psycopg without it: the same, one round trip more
        pipeline.sync()


def _append_batch(engine: Engine, stream: str, sealed: Sequence[Sealed]) -> list[AppendResult]:
    # A large batch: take the chain lock, chain the queue, link the batch here and COPY it
    # in, which inserts at about twice the rate of row-by-row SQL. One synchronous commit
    # for the whole batch.
    raw = engine.raw_connection()
    try:
        db = _driver(raw)
        with db.transaction():
            db.execute(LOCK_SQL, ("copilot.audit:" + stream,))
            db.execute(DRAIN_SQL, {"stream": stream, "genesis": genesis(stream)})
            keys = [s.event.idempotency_key for s in sealed if s.event.idempotency_key]
            known: dict[str, tuple[int, bytes]] = {}
            if keys:
                found = db.execute(
                    "SELECT idempotency_key, seq, hash FROM audit_entries "
                    "WHERE stream = %s AND idempotency_key = ANY(%s)",
                    (stream, keys),
                )
                known = {k: (q, h) for k, q, h in found}
            head = db.execute(HEAD_SQL, (stream,)).fetchone()
            rows, blobs, results = link_rows(stream, head, sealed, known)
            with db.cursor().copy(f"COPY audit_entries ({COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if blobs:
                with db.cursor().copy(
                    "COPY audit_payloads (stream, seq, salt, payload) FROM STDIN"
                ) as copy:
                    for blob in blobs:
                        copy.write_row(blob)
    except Exception as exc:
        discard_if_spoiled(raw, exc)
        raise
    finally:
        raw.close()
    return results


def settle(engine: Engine, stream: str, *, durable: bool, wait: float = SETTLE_WAIT) -> int:
    """Chain the stream's queue, waiting at most `wait` s for its lock (see `SqlAuditStore.settle`).

    -1 when the lock stayed busy that long (its holder is slow, or frozen inside its
    transaction until `idle_in_transaction_session_timeout` ends it): nothing was chained,
    and a durable settle still flushes the WAL, so readers go on with what is chained.
    """
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{max(1, int(wait * 1000))}ms'")
            n = conn.exec_driver_sql(SETTLE_SQL, _settle_params(stream, durable=durable)).scalar()
            if durable:  # write WAL so this commit flushes every earlier async commit
                conn.exec_driver_sql(FLUSH_SQL)
        return int(n or 0)
    except OperationalError as exc:
        if sqlstate(exc) != LOCK_NOT_AVAILABLE:
            raise
    if durable:
        with autocommit_driver(engine) as db:
            db.execute(FLUSH_SQL)
    return -1


def settle_in(conn: Connection, stream: str) -> None:
    """Take the stream's chain lock in `conn`'s transaction and chain its queue."""
    conn.exec_driver_sql(SETTLE_SQL, _settle_params(stream, durable=True))


def rows(engine: Engine, stream: str, after_seq: int) -> Generator[Row, None, None]:
    """The chain's rows with their payloads, in seq order, through a server-side cursor."""
    stmt = (
        select(
            entries.c.seq, entries.c.prev_hash, entries.c.hash, entries.c.commitment,
            entries.c.body, payloads.c.salt, payloads.c.payload,
            *(entries.c[name] for name in INDEX_COLUMNS),  # checked against each body
        )
        .select_from(
            entries.outerjoin(
                payloads,
                and_(payloads.c.stream == entries.c.stream, payloads.c.seq == entries.c.seq),
            )
        )
        .where(entries.c.stream == stream, entries.c.seq > after_seq)
        .order_by(entries.c.seq)
    )  # fmt: skip
    with engine.connect() as conn:
        reader = readonly(conn, autocommit=False).execution_options(
            stream_results=True, yield_per=5000
        )
        result = reader.execute(stmt)
        try:
            for r in result:
                yield Row(
                    r[0],
                    bytes(r[1]),
                    bytes(r[2]),
                    _b(r[3]),
                    bytes(r[4]),
                    _b(r[5]),
                    _b(r[6]),
                    *r[7:],
                )
        finally:  # a verifier that stops at the first bad entry closes the cursor now
            result.close()


def _b(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


def _settle_params(stream: str, *, durable: bool) -> dict[str, object]:
    return {"stream": stream, "genesis": genesis(stream), "durable": durable, "wait": True}


def _one_params(stream: str, s: Sealed, mode: str = "try_async") -> dict[str, object]:
    e = s.event
    return {
        "stream": stream, "genesis": genesis(stream), "mode": mode,
        "commitment": s.commitment, "body": s.body, "salt": s.salt, "payload": s.personal,
        "recorded_at": s.recorded_at, "actor_kind": e.actor.kind.value, "actor_id": e.actor.id,
        "event_type": e.event_type, "run_id": e.run_id, "subject_id": e.subject_id,
        "key": e.idempotency_key,
    }  # fmt: skip


def _result(stream: str, seq: int | None, digest: bytes | None, status: str) -> AppendResult:
    return AppendResult(
        stream=stream,
        seq=seq,
        hash=bytes(digest).hex() if digest is not None else None,
        duplicate=status == "duplicate",
        pending=status == "pending",
    )


__all__ = [
    "append_in",
    "append_standalone",
    "call_in",
    "results",
    "rows",
    "settle",
    "settle_in",
]
