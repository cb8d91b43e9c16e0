"""The SQL `AuditStore` (SQLite and PostgreSQL), on SQLAlchemy Core and the raw drivers.

How appends stay one chain without serializing every commit:

- SQLite serializes writers anyway (`BEGIN IMMEDIATE`), so an append reads the head and
  inserts the next entry inside the writer's own transaction.
- PostgreSQL commits many transactions at once (group commit); a chain lock held across
  each commit's WAL flush would forfeit that. So the chain is extended by a server-side
  function (one round trip, see the migration) that *tries* the stream's advisory lock.
  When it is free, the function chains any queued events and then the new ones; a
  standalone append commits that without waiting for the flush, releasing the lock at
  once, and then waits for durability with a flushing commit of its own outside the lock
  before it reports success (the WAL is sequential: nothing chained after an entry can
  survive a crash that entry did not). When the lock is taken, the event goes to
  `audit_pending`, durable with the caller's commit, and the next lock holder chains it.
  `settle()` chains the queue on demand and the sweeper settles idle streams: a bounded
  merge delay, as in Certificate Transparency logs (Trillian's sequencer), with the
  sequencing done by the writers themselves.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    select,
)

from audit.chain import Sealed, genesis, link, seal, timestamp
from audit.db import _driver, autocommit_driver, readonly
from audit.model import Actor, AppendResult, AuditEvent, Checkpoint, Entry
from audit.stores import Query
from audit.verify import ERASED_EVENT, Row

metadata = MetaData()

entries = Table(
    "audit_entries",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("commitment", LargeBinary(32), nullable=True),
    Column("body", LargeBinary, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("subject_id", String(200), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    UniqueConstraint("stream", "idempotency_key", name="uq_audit_entries_idempotency"),
    Index("ix_audit_entries_run", "stream", "run_id"),
    Index("ix_audit_entries_subject", "stream", "subject_id"),
    Index("ix_audit_entries_type", "stream", "event_type"),
)

pending = Table(
    "audit_pending",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("stream", String(200), nullable=False),
    Column("commitment", LargeBinary(32), nullable=True),
    Column("body", LargeBinary, nullable=False),
    Column("salt", LargeBinary(16), nullable=True),
    Column("payload", LargeBinary, nullable=True),
    Column("recorded_at", String(32), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("subject_id", String(200), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    UniqueConstraint("stream", "idempotency_key", name="uq_audit_pending_idempotency"),
    Index("ix_audit_pending_stream", "stream", "id"),
)

payloads = Table(
    "audit_payloads",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("salt", LargeBinary(16), nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", String(64), primary_key=True),
    Column("head", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("signed_at", String(32), nullable=False),
)

# A standalone append of this many events chains in place under the lock (one commit for
# the batch); smaller ones queue and settle, so no one holds the lock across a WAL flush.
_INLINE_BATCH = 32
_COLUMNS = (
    "stream, seq, prev_hash, hash, commitment, body, recorded_at, actor_kind, actor_id, "
    "event_type, run_id, subject_id, idempotency_key"
)
_INSERT_SQL = f"INSERT INTO audit_entries ({_COLUMNS}) VALUES ({', '.join('?' * 13)})"
_HEAD_SQL = "SELECT seq, hash FROM audit_entries WHERE stream = ? ORDER BY seq DESC LIMIT 1"
_PG_HEAD_SQL = _HEAD_SQL.replace("?", "%s")  # psycopg's placeholder
# A transactional logical message writes WAL, so this statement's synchronous commit
# flushes the WAL up to and past every earlier (asynchronous) commit. Merely taking an xid
# is not enough: a transaction that wrote no WAL commits without flushing.
_PG_FLUSH_SQL = "SELECT pg_logical_emit_message(true, 'copilot.flush', '')"
_PG_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_PG_SETTLE_SQL = "SELECT audit_settle(%s, %s, %s, %s)"
_PG_APPEND_ONE_SQL = (
    "SELECT o_seq, o_hash, o_status FROM audit_append_one(%s, %s, 'try_async', %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, %s, %s)"
)
_PG_APPEND_SQL = (
    "SELECT o_seq, o_hash, o_status FROM audit_append(%s, %s, %s, %s::bytea[], %s::bytea[], "
    "%s::bytea[], %s::bytea[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[])"
)


class SqlAuditStore:
    """Hash-chained streams in a relational database.

    >>> store = SqlAuditStore(create_engine("sqlite:///:memory:"))  # doctest: +SKIP
    >>> store.append("acme", [AuditEvent(event_type="run.created", actor=Actor.system())])
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    # -- appending ---------------------------------------------------------------------------

    def append(self, stream: str, events: Sequence[AuditEvent]) -> list[AppendResult]:
        """Append in a transaction of our own; returns once the events are durable.

        They are chained on return too, except on PostgreSQL when another writer held the
        stream's chain lock: then a result is `pending` and the event is chained by the
        next writer to take the lock, or by `settle()` (the sweeper, and every reader of
        the chain in this package, call it).
        """
        if self._pg:
            return self._append_pg_standalone(stream, events)
        sealed = [seal(e) for e in events]
        raw = self.engine.raw_connection()  # see _append_pg_standalone for why raw
        try:
            dbapi = _driver(raw)
            dbapi.execute("BEGIN IMMEDIATE")
            try:
                results = self._append_sqlite(dbapi, stream, sealed)
            except BaseException:
                dbapi.execute("ROLLBACK")
                raise
            dbapi.execute("COMMIT")
        finally:
            raw.close()
        return results

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
            params = _pg_params(stream, sealed, "wait" if wait else "try")
            rows = conn.exec_driver_sql(_PG_APPEND_SQL, params).all()
            return [_pg_result(stream, *r) for r in rows]
        return self._append_sqlite(_driver(conn.connection), stream, sealed)

    def _append_pg_standalone(
        self, stream: str, events: Sequence[AuditEvent]
    ) -> list[AppendResult]:
        # The hot path: one autocommit statement on a pooled driver connection. Python
        # per append costs as much CPU as the database does here, so SQLAlchemy's
        # per-statement machinery is left out (there is no ORM anywhere on this path).
        stamp = timestamp()
        sealed = [seal(e, stamp) for e in events]
        if len(sealed) >= _INLINE_BATCH:
            return self._append_pg_batch(stream, sealed)
        mode = "try"
        with autocommit_driver(self.engine) as dbapi:
            if len(sealed) == 1:
                sql, params = _PG_APPEND_ONE_SQL, _pg_one(stream, sealed[0])
            else:
                sql, params = _PG_APPEND_SQL, _pg_params(stream, sealed, mode)
            rows = dbapi.execute(sql, params, prepare=True).fetchall()
            results = [_pg_result(stream, *r) for r in rows]
            # A `pending` result was queued behind a lock holder, durable with our commit:
            # the next append that takes the lock chains the queue first thing, and the
            # sweeper settles what an idle stream leaves behind. A bounded merge delay, as
            # in Certificate Transparency logs, instead of every writer waiting in line.
            if len(sealed) == 1 and results[0].seq is not None and not results[0].duplicate:
                # It chained inline and committed asynchronously, releasing the chain lock
                # without waiting for the WAL flush. This statement writes WAL, so its
                # (synchronous) commit flushes the WAL up to and including our append;
                # only then is the append acknowledged. Flushes group-commit in parallel.
                dbapi.execute(_PG_FLUSH_SQL, prepare=True)
        return results

    def _append_pg_batch(self, stream: str, sealed: Sequence[Sealed]) -> list[AppendResult]:
        # A large batch: take the chain lock, chain the queue, link the batch here and
        # COPY it in, which inserts at about twice the rate of row-by-row SQL. One
        # synchronous commit for the whole batch.
        raw = self.engine.raw_connection()
        try:
            db = _driver(raw)
            with db.transaction():
                db.execute(_PG_LOCK_SQL, ("copilot.audit:" + stream,))
                db.execute("SELECT audit_drain(%s, %s)", (stream, genesis(stream)))
                keys = [s.event.idempotency_key for s in sealed if s.event.idempotency_key]
                known: dict[str, tuple[int, bytes]] = {}
                if keys:
                    found = db.execute(
                        "SELECT idempotency_key, seq, hash FROM audit_entries "
                        "WHERE stream = %s AND idempotency_key = ANY(%s)",
                        (stream, keys),
                    )
                    known = {k: (q, h) for k, q, h in found}
                head = db.execute(_PG_HEAD_SQL, (stream,)).fetchone()
                rows, blobs, results = _link(stream, head, sealed, known)
                with db.cursor().copy(f"COPY audit_entries ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                if blobs:
                    with db.cursor().copy(
                        "COPY audit_payloads (stream, seq, salt, payload) FROM STDIN"
                    ) as copy:
                        for blob in blobs:
                            copy.write_row(blob)
        finally:
            raw.close()
        return results

    def _append_sqlite(
        self, dbapi: Any, stream: str, sealed: Sequence[Sealed]
    ) -> list[AppendResult]:
        # `dbapi` is the sqlite3 connection inside a BEGIN IMMEDIATE transaction, which
        # holds the database's write lock. Driver-level calls: SQLAlchemy's per-statement
        # machinery would cost more than the inserts themselves.
        keys = [s.event.idempotency_key for s in sealed if s.event.idempotency_key]
        known: dict[str, tuple[int, bytes]] = {}
        if keys:
            marks = ",".join("?" * len(keys))
            found = dbapi.execute(
                "SELECT idempotency_key, seq, hash FROM audit_entries "
                f"WHERE stream = ? AND idempotency_key IN ({marks})",
                (stream, *keys),
            )
            known = {k: (q, bytes(h)) for k, q, h in found}
        head = dbapi.execute(_HEAD_SQL, (stream,)).fetchone()
        rows, blobs, results = _link(stream, head, sealed, known)
        if rows:
            dbapi.executemany(_INSERT_SQL, rows)
        if blobs:
            dbapi.executemany(
                "INSERT INTO audit_payloads (stream, seq, salt, payload) VALUES (?, ?, ?, ?)", blobs
            )
        return results

    def settle(self, stream: str, *, durable: bool = True) -> int:
        """Chain events queued for `stream` (PostgreSQL); returns how many were chained.

        Waits for the chain lock, so everything committed before the call is chained when
        it returns. Safe to call from anyone at any time; SQLite never queues.

        `durable=False` commits without waiting for the WAL flush. That loses nothing: the
        queued rows are already durable, and a crash before the flush undoes the drain and
        its deletes together, so the next settle chains them again. Appenders use it. A
        durable settle also flushes every earlier asynchronous commit: the signer calls it
        before it reads a head to sign, so it never signs a head a crash could undo.
        """
        if not self._pg:
            return 0
        with self.engine.begin() as conn:
            n = conn.exec_driver_sql(
                _PG_SETTLE_SQL, (stream, genesis(stream), durable, True)
            ).scalar()
            if durable:  # write WAL so this commit flushes every earlier async commit
                conn.exec_driver_sql(_PG_FLUSH_SQL)
        return int(n or 0)

    def settle_all(self) -> int:
        """Settle every stream that has queued events (the sweeper's job)."""
        if not self._pg:
            return 0
        with self.engine.connect() as conn:
            streams = [s for (s,) in readonly(conn).execute(select(pending.c.stream).distinct())]
        return sum(self.settle(s) for s in streams)

    def pending_count(self, stream: str | None = None) -> int:
        """Events committed but not yet chained."""
        stmt = select(func.count()).select_from(pending)
        if stream is not None:
            stmt = stmt.where(pending.c.stream == stream)
        with self.engine.connect() as conn:
            return int(readonly(conn).execute(stmt).scalar_one())

    # -- reading -----------------------------------------------------------------------------

    def rows(self, stream: str, *, after_seq: int = 0) -> Generator[Row, None, None]:
        """Stream raw rows with their payloads, in seq order, in constant memory."""
        if not self._pg:
            yield from self._rows_sqlite(stream, after_seq)
            return
        stmt = (
            select(
                entries.c.seq, entries.c.prev_hash, entries.c.hash, entries.c.commitment,
                entries.c.body, payloads.c.salt, payloads.c.payload,
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
        with self.engine.connect() as conn:
            reader = readonly(conn, autocommit=False).execution_options(
                stream_results=True, yield_per=5000
            )
            result = reader.execute(stmt)
            try:
                for r in result:
                    yield Row(
                        r[0], bytes(r[1]), bytes(r[2]), _b(r[3]), bytes(r[4]), _b(r[5]), _b(r[6])
                    )
            finally:  # a verifier that stops at the first bad entry closes the cursor now
                result.close()

    def _rows_sqlite(self, stream: str, after_seq: int) -> Generator[Row, None, None]:
        # Verification is a read of every byte; SQLAlchemy's per-row result machinery and
        # a per-row join would cost more than the hashing. Two ordered scans, merged here
        # (few entries have payloads), through the driver, in a deferred read transaction
        # that never blocks writers and sees one consistent snapshot.
        raw = self.engine.raw_connection()
        try:
            db = _driver(raw)
            db.execute("BEGIN")
            try:
                found = db.execute(
                    "SELECT seq, prev_hash, hash, commitment, body FROM audit_entries "
                    "WHERE stream = ? AND seq > ? ORDER BY seq",
                    (stream, after_seq),
                )
                blobs = db.execute(
                    "SELECT seq, salt, payload FROM audit_payloads "
                    "WHERE stream = ? AND seq > ? ORDER BY seq",
                    (stream, after_seq),
                )
                nxt = blobs.fetchone()
                while batch := found.fetchmany(5000):
                    for seq, prev, digest, commitment, body in batch:
                        while nxt is not None and nxt[0] < seq:
                            nxt = blobs.fetchone()
                        if nxt is not None and nxt[0] == seq:
                            yield Row(seq, prev, digest, commitment, body, nxt[1], nxt[2])
                        else:
                            yield Row(seq, prev, digest, commitment, body, None, None)
            finally:
                db.execute("ROLLBACK")
        finally:
            raw.close()

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
            conn.exec_driver_sql(_PG_SETTLE_SQL, (stream, genesis(stream), True, True))
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


def _link(
    stream: str,
    head: Any,
    sealed: Sequence[Sealed],
    known: dict[str, tuple[int, bytes]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[AppendResult]]:
    """Link `sealed` after `head` (seq, hash) into entry rows, payload rows and results.

    `known` maps idempotency keys already in the chain to (seq, hash); a key seen again,
    there or earlier in the batch, is a duplicate and takes no place in the chain.
    """
    seq, prev = (head[0], bytes(head[1])) if head else (0, genesis(stream))
    rows, blobs, results = [], [], []
    for s in sealed:
        e = s.event
        key = e.idempotency_key
        if key is not None and key in known:
            dseq, dhash = known[key]
            results.append(
                AppendResult(stream=stream, seq=dseq, hash=bytes(dhash).hex(), duplicate=True)
            )
            continue
        seq += 1
        digest = link(prev, s.commitment, s.body)
        rows.append(
            (stream, seq, prev, digest, s.commitment, s.body, s.recorded_at,
             e.actor.kind.value, e.actor.id, e.event_type, e.run_id, e.subject_id, key)
        )  # fmt: skip
        if s.personal is not None:
            blobs.append((stream, seq, s.salt, s.personal))
        if key is not None:
            known[key] = (seq, digest)
        results.append(AppendResult(stream=stream, seq=seq, hash=digest.hex()))
        prev = digest
    return rows, blobs, results


def _b(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


def _pg_params(stream: str, sealed: Sequence[Sealed], mode: str) -> tuple[object, ...]:
    ev = [s.event for s in sealed]
    return (
        stream, genesis(stream), mode,
        [s.commitment for s in sealed], [s.body for s in sealed],
        [s.salt for s in sealed], [s.personal for s in sealed],
        [s.recorded_at for s in sealed], [e.actor.kind.value for e in ev],
        [e.actor.id for e in ev], [e.event_type for e in ev], [e.run_id for e in ev],
        [e.subject_id for e in ev], [e.idempotency_key for e in ev],
    )  # fmt: skip


def _pg_one(stream: str, s: Sealed) -> tuple[object, ...]:
    e = s.event
    return (
        stream, genesis(stream), s.commitment, s.body, s.salt, s.personal, s.recorded_at,
        e.actor.kind.value, e.actor.id, e.event_type, e.run_id, e.subject_id, e.idempotency_key,
    )  # fmt: skip


def _pg_result(stream: str, seq: int | None, digest: bytes | None, status: str) -> AppendResult:
    return AppendResult(
        stream=stream,
        seq=seq,
        hash=bytes(digest).hex() if digest is not None else None,
        duplicate=status == "duplicate",
        pending=status == "pending",
    )
