"""The SQL `AuditStore` (SQLite and PostgreSQL): the facade over the two dialects' seams.

What differs by dialect lives in one module each: audit.stores.sql.sqlite (appends inside
the writer's `BEGIN IMMEDIATE`) and audit.stores.sql.postgres (appends and settles through
server functions that never hold the chain lock across a WAL flush; its docstring says
how the chain stays one without serializing commits). Reads, checkpoints and erasure are
SQLAlchemy Core over audit.stores.sql.tables, the same on both.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select

from audit.chain import seal, timestamp
from audit.db import _driver, readonly
from audit.model import Actor, AppendResult, AuditEvent, Checkpoint, Entry
from audit.stores import Query
from audit.stores.sql import postgres, sqlite
from audit.stores.sql.tables import checkpoints, entries, payloads, pending
from audit.verify import ERASED_EVENT, Row


class SqlAuditStore:
    """Hash-chained streams in a relational database.

    >>> store = SqlAuditStore(create_engine("sqlite:///:memory:"))  # doctest: +SKIP
    >>> store.append("acme", [AuditEvent(event_type="run.created", actor=Actor.system())])
    """

    def __init__(self, engine: Engine, *, settle_wait: float = postgres.SETTLE_WAIT) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"
        # The longest a settle waits for a stream's chain lock (see `settle`).
        self.settle_wait = settle_wait

    # -- appending ---------------------------------------------------------------------------

    def append(self, stream: str, events: Sequence[AuditEvent]) -> list[AppendResult]:
        """Append in a transaction of our own; returns once the events are durable.

        They are chained on return too, except on PostgreSQL when another writer held the
        stream's chain lock: then a result is `pending` and the event is chained by the
        next writer to take the lock, or by `settle()` (the sweeper, and every reader of
        the chain in this package, call it).
        """
        if self._pg:
            stamp = timestamp()
            return postgres.append_standalone(self.engine, stream, [seal(e, stamp) for e in events])
        return sqlite.append_standalone(self.engine, stream, [seal(e) for e in events])

    def append_in(
        self, conn: Connection, stream: str, events: Sequence[AuditEvent], *, wait: bool = False
    ) -> list[AppendResult]:
        """Append inside the caller's transaction: the events commit or roll back with it.

        PostgreSQL: if another transaction holds the stream's chain lock, the events are
        queued (`pending`, durable with the caller's commit) rather than waiting for it;
        call `settle(stream, durable=False)` after commit to chain them at once, or leave
        it to the sweeper. `wait=True` waits for the lock instead, so every result is
        chained when this returns (the lock is then held until the caller commits).
        """
        stamp = timestamp()
        sealed = [seal(e, stamp) for e in events]
        if self._pg:
            return postgres.append_in(conn, stream, sealed, wait=wait)
        return sqlite.append(_driver(conn.connection), stream, sealed)

    def append_call(
        self, stream: str, events: Sequence[AuditEvent], *, wait: bool = False
    ) -> tuple[str, dict[str, object]]:
        """`append_in` as a statement for a transaction the caller runs on a driver of its own
        (the API's asyncio decide): the SQL, in psycopg's named style (`%(name)s`), and its
        arguments. Executing it in the caller's transaction is `append_in` exactly (the same
        server function, the same sealing); PostgreSQL only: SQLite appends through the
        connection's chaining view, which only `append_in` sets up."""
        if not self._pg:
            raise NotImplementedError("append_call is PostgreSQL's; on SQLite use append_in")
        stamp = timestamp()
        return postgres.call_in(stream, [seal(e, stamp) for e in events], wait=wait)

    def settle(self, stream: str, *, durable: bool = True, wait: float | None = None) -> int:
        """Chain events queued for `stream` (PostgreSQL); returns how many were chained.

        Waits for the chain lock, so everything committed before the call is chained when
        it returns; but never longer than `wait` seconds (default: the store's `settle_wait`,
        10 s unless configured): a holder frozen in its
        transaction must not hang readers, the signer or the sweeper. Then it returns -1
        having chained nothing, and the caller goes on with what is chained (verification
        reports the queue). Safe to call from anyone at any time; SQLite never queues.

        `durable=False` commits without waiting for the WAL flush. That loses nothing: the
        queued rows are already durable, and a crash before the flush undoes the drain and
        its deletes together, so the next settle chains them again. Appenders use it. A
        durable settle also flushes every earlier asynchronous commit: the signer calls it
        before it reads a head to sign, so it never signs a head a crash could undo.
        """
        if not self._pg:
            return 0
        limit = self.settle_wait if wait is None else wait
        return postgres.settle(self.engine, stream, durable=durable, wait=limit)

    def settle_all(self) -> int:
        """Settle every stream that has queued events (the sweeper's job)."""
        if not self._pg:
            return 0
        with self.engine.connect() as conn:
            streams = [s for (s,) in readonly(conn).execute(select(pending.c.stream).distinct())]
        return sum(max(0, self.settle(s)) for s in streams)  # a busy stream: the next sweep

    def pending_count(self, stream: str | None = None) -> int:
        """Events committed but not yet chained."""
        with self.engine.connect() as conn:
            return self.queued_count(readonly(conn), stream)

    @staticmethod
    def queued_count(conn: Connection, stream: str | None = None) -> int:
        """`pending_count` read in the caller's connection (the metrics read many in one)."""
        stmt = select(func.count()).select_from(pending)
        if stream is not None:
            stmt = stmt.where(pending.c.stream == stream)
        return int(conn.execute(stmt).scalar_one())

    @staticmethod
    def stream_heads(conn: Connection) -> list[tuple[str, int]]:
        """(stream, seq of its last chained entry) for every stream, read in `conn`."""
        stmt = select(entries.c.stream, func.max(entries.c.seq)).group_by(entries.c.stream)
        return [(stream, int(seq)) for stream, seq in conn.execute(stmt)]

    # -- reading -----------------------------------------------------------------------------

    def rows(self, stream: str, *, after_seq: int = 0) -> Generator[Row, None, None]:
        """Stream raw rows with their payloads, in seq order, in constant memory."""
        if self._pg:
            yield from postgres.rows(self.engine, stream, after_seq)
        else:
            yield from sqlite.rows(self.engine, stream, after_seq)

    def erasures(self, stream: str) -> Iterator[tuple[int, bytes]]:
        """(seq, body) of the stream's erasure tombstones."""
        stmt = select(entries.c.seq, entries.c.body).where(
            entries.c.stream == stream, entries.c.event_type == ERASED_EVENT
        )
        with self.engine.connect() as conn:
            for seq, body in readonly(conn).execute(stmt):
                yield seq, bytes(body)

    def head(self, stream: str) -> tuple[int, bytes | None]:
        """(size, hash of the last entry)."""
        with self.engine.connect() as conn:
            row = (
                readonly(conn)
                .execute(
                    select(entries.c.seq, entries.c.hash)
                    .where(entries.c.stream == stream)
                    .order_by(entries.c.seq.desc())
                    .limit(1)
                )
                .first()
            )
        return (row[0], bytes(row[1])) if row else (0, None)

    def hash_at(self, stream: str, seq: int) -> bytes | None:
        """The stored hash of entry `seq`."""
        stmt = select(entries.c.hash).where(entries.c.stream == stream, entries.c.seq == seq)
        with self.engine.connect() as conn:
            value = readonly(conn).execute(stmt).scalar()
        return bytes(value) if value is not None else None

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        """Recorded checkpoints, ascending by size."""
        stmt = (
            select(checkpoints).where(checkpoints.c.stream == stream).order_by(checkpoints.c.size)
        )
        with self.engine.connect() as conn:
            return [Checkpoint(**r._mapping) for r in readonly(conn).execute(stmt)]

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Record a checkpoint; recording the same one twice is a no-op."""
        with self.engine.begin() as conn:
            found = conn.execute(
                select(checkpoints.c.size).where(
                    checkpoints.c.stream == checkpoint.stream,
                    checkpoints.c.size == checkpoint.size,
                    checkpoints.c.key_id == checkpoint.key_id,
                )
            ).first()
            if found is None:
                conn.execute(insert(checkpoints).values(**checkpoint.model_dump()))

    def query(self, stream: str, query: Query) -> list[Entry]:
        """Entries matching `query`, ascending by seq, at most `query.limit`."""
        c = entries.c
        conds = [c.stream == stream, c.seq > query.after_seq]
        for col, value in (
            (c.run_id, query.run_id),
            (c.subject_id, query.subject_id),
            (c.actor_id, query.actor_id),
            (c.actor_kind, query.actor_kind),
            (c.event_type, query.event_type),
        ):
            if value is not None:
                conds.append(col == value)
        if query.since is not None:
            conds.append(c.recorded_at >= query.since)
        if query.until is not None:
            conds.append(c.recorded_at < query.until)
        stmt = (
            select(c.seq, c.prev_hash, c.hash, c.commitment, c.body, payloads.c.payload)
            .select_from(
                entries.outerjoin(
                    payloads, and_(payloads.c.stream == c.stream, payloads.c.seq == c.seq)
                )
            )
            .where(*conds)
            .order_by(c.seq)
            .limit(query.limit)
        )
        with self.engine.connect() as conn:
            found = readonly(conn).execute(stmt).all()
        out = []
        for seq, prev, digest, commitment, body, payload in found:
            e = Entry.from_row(
                stream=stream, seq=seq, prev_hash=bytes(prev), hash=bytes(digest),
                commitment=_b(commitment), body=bytes(body), payload=_b(payload),
            )  # fmt: skip
            out.append(e if query.with_personal else e.model_copy(update={"personal": None}))
        return out

    def streams(self) -> list[str]:
        """Every stream with chained entries."""
        with self.engine.connect() as conn:
            return [s for (s,) in readonly(conn).execute(select(entries.c.stream).distinct())]

    # -- erasure -----------------------------------------------------------------------------

    def erase_subject(self, stream: str, subject_id: str, actor: Actor) -> AppendResult | None:
        """Delete a subject's erasable payloads and append the tombstone, in one transaction."""
        with self.engine.begin() as conn:
            seqs = self._erasable(conn, stream, subject_id)
            return self._tombstone(conn, stream, subject_id, actor, seqs)

    def erase_subject_in(self, conn: Connection, stream: str, subject_id: str, actor: Actor) -> int:
        """`erase_subject` inside the caller's transaction; how many payloads were erased."""
        seqs = self._erasable(conn, stream, subject_id)
        self._tombstone(conn, stream, subject_id, actor, seqs)
        return len(seqs)

    def _erasable(self, conn: Connection, stream: str, subject_id: str) -> list[int]:
        if self._pg:  # take the chain lock and chain the queue, so no payload is missed
            postgres.settle_in(conn, stream)
        return [
            s
            for (s,) in conn.execute(
                select(payloads.c.seq)
                .join(
                    entries,
                    and_(entries.c.stream == payloads.c.stream, entries.c.seq == payloads.c.seq),
                )
                .where(entries.c.stream == stream, entries.c.subject_id == subject_id)
                .order_by(payloads.c.seq)
            )
        ]

    def _tombstone(
        self, conn: Connection, stream: str, subject_id: str, actor: Actor, seqs: list[int]
    ) -> AppendResult | None:
        if not seqs:
            return None
        conn.execute(delete(payloads).where(payloads.c.stream == stream, payloads.c.seq.in_(seqs)))
        tomb = AuditEvent(
            event_type=ERASED_EVENT,
            actor=actor,
            subject_id=subject_id,
            data={"erased_seqs": seqs, "count": len(seqs)},
        )
        return self.append_in(conn, stream, [tomb], wait=True)[0]


def _b(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


__all__ = ["SqlAuditStore"]
