"""The SQL `AuditStore` (SQLite and PostgreSQL), on SQLAlchemy Core.

How appends stay a chain without serializing every commit:

- SQLite serializes writers anyway (`BEGIN IMMEDIATE`), so an append reads the head and
  inserts the next entry inside the writer's own transaction.
- PostgreSQL commits many transactions at once (group commit), and a chain lock held
  through commit would forfeit that. So an appender first *tries* the stream's advisory
  transaction lock: when it gets it, it chains inline, as on SQLite; when another
  transaction holds it, the event goes to `audit_pending` in the caller's transaction, and
  after commit the appender (or whoever holds the lock next) chains the queue in one
  batch. The event is durable with the caller's commit either way; it takes its place in
  the chain a moment later. This is the sequencer of Certificate Transparency logs
  (Trillian's queue and merge delay), with the merge done by the writers themselves.
  `settle()` drains the queue; the sweeper calls it for appenders that died after commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    event,
    exists,
    func,
    insert,
    select,
    text,
)
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url

from audit.chain import Sealed, genesis, link, seal, timestamp
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

DRAIN_BATCH = 1000
_READONLY = "copilot_readonly"


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured the way the trail needs it.

    SQLite: WAL, `synchronous=NORMAL` (a committed transaction survives a process crash),
    a 30 s busy timeout, and `BEGIN IMMEDIATE` for every transaction that may write, so
    concurrent writers queue on the lock instead of failing on upgrade. Readers opt out
    with `conn.execution_options(copilot_readonly=True)`.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa_create_engine(url, **kwargs)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", 30)
    connect_args.setdefault("check_same_thread", False)
    engine = sa_create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def readonly(conn: Connection) -> Connection:
    """Mark a connection as a reader (SQLite: a deferred transaction that never blocks writers)."""
    return conn.execution_options(**{_READONLY: True})


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
        """Append in a transaction of our own; on PostgreSQL, chain any queued events after."""
        with self.engine.begin() as conn:
            results = self.append_in(conn, stream, events)
        if self._pg:
            self.settle(stream)
        return results

    def append_in(
        self, conn: Connection, stream: str, events: Sequence[AuditEvent]
    ) -> list[AppendResult]:
        """Append inside the caller's transaction: the events commit or roll back with it.

        On PostgreSQL the result may be `pending` (queued behind a concurrent writer); call
        `settle(stream)` after commit to chain it at once, or leave it to the sweeper.
        """
        stamp = timestamp()
        sealed = [seal(e, stamp) for e in events]
        if self._pg and not self._try_lock(conn, stream):
            return self._enqueue(conn, stream, sealed)
        return self._chain(conn, stream, sealed)

    def _try_lock(self, conn: Connection, stream: str, *, wait: bool = False) -> bool:
        if not self._pg:
            return True  # BEGIN IMMEDIATE already holds the database's write lock
        fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        got = conn.execute(
            text(f"SELECT {fn}(hashtextextended(:k, 0))"), {"k": "copilot.audit:" + stream}
        ).scalar()
        return wait or bool(got)

    def _head(self, conn: Connection, stream: str) -> tuple[int, bytes]:
        row = conn.execute(
            select(entries.c.seq, entries.c.hash)
            .where(entries.c.stream == stream)
            .order_by(entries.c.seq.desc())
            .limit(1)
        ).first()
        return (row[0], row[1]) if row else (0, genesis(stream))

    def _known_keys(
        self, conn: Connection, stream: str, keys: list[str], *, queued: bool = True
    ) -> dict[str, int]:
        """Idempotency keys already used in the stream: key -> seq (0 while still queued)."""
        if not keys:
            return {}
        rows = conn.execute(
            select(entries.c.idempotency_key, entries.c.seq).where(
                entries.c.stream == stream, entries.c.idempotency_key.in_(keys)
            )
        )
        found = {k: s for k, s in rows}
        if self._pg and queued:
            waiting = conn.execute(
                select(pending.c.idempotency_key).where(
                    pending.c.stream == stream, pending.c.idempotency_key.in_(keys)
                )
            )
            found.update({k: 0 for (k,) in waiting if k not in found})
        return found

    def _chain(self, conn: Connection, stream: str, sealed: Sequence[Sealed]) -> list[AppendResult]:
        keys = [s.event.idempotency_key for s in sealed if s.event.idempotency_key]
        known = self._known_keys(conn, stream, keys)
        seq, prev = self._head(conn, stream)
        rows: list[dict[str, Any]] = []
        blobs: list[dict[str, Any]] = []
        results: list[AppendResult] = []
        for s in sealed:
            key = s.event.idempotency_key
            if key is not None and key in known:
                results.append(_duplicate(conn, stream, key, known[key]))
                continue
            seq += 1
            digest = link(prev, s.commitment, s.body)
            rows.append(_entry_row(stream, seq, prev, digest, s))
            if s.personal is not None:
                blobs.append({"stream": stream, "seq": seq, "salt": s.salt, "payload": s.personal})
            if key is not None:
                known[key] = seq
            results.append(AppendResult(stream=stream, seq=seq, hash=digest.hex()))
            prev = digest
        if rows:
            conn.execute(insert(entries), rows)
        if blobs:
            conn.execute(insert(payloads), blobs)
        return results

    def _enqueue(self, conn: Connection, stream: str, sealed: Sequence[Sealed]) -> list[AppendResult]:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        keys = [s.event.idempotency_key for s in sealed if s.event.idempotency_key]
        known = self._known_keys(conn, stream, keys)
        results = []
        for s in sealed:
            key = s.event.idempotency_key
            if key is not None and key in known:
                results.append(_duplicate(conn, stream, key, known[key]))
                continue
            row = _entry_row(stream, 0, b"", b"", s)
            for k in ("seq", "prev_hash", "hash"):
                del row[k]
            row.update(salt=s.salt, payload=s.personal)
            stmt = pg_insert(pending).values(row).on_conflict_do_nothing().returning(pending.c.id)
            queued = conn.execute(stmt).first() is not None
            results.append(
                AppendResult(stream=stream, seq=None, hash=None, pending=queued, duplicate=not queued)
            )
        return results

    def settle(self, stream: str) -> int:
        """Chain queued events for `stream` (PostgreSQL); returns how many were chained.

        Safe to call from anyone at any time. If another transaction holds the chain lock,
        it returns: that holder drains the queue after its own commit, so nothing that was
        committed before this call is left behind.
        """
        if not self._pg:
            return 0
        total = 0
        while True:
            with self.engine.connect() as probe:
                has = probe.execute(select(exists().where(pending.c.stream == stream))).scalar()
                probe.rollback()
            if not has:
                return total
            with self.engine.begin() as conn:
                if not self._try_lock(conn, stream):
                    return total
                total += self._drain(conn, stream)

    def _drain(self, conn: Connection, stream: str) -> int:
        queued = conn.execute(
            select(pending).where(pending.c.stream == stream).order_by(pending.c.id).limit(DRAIN_BATCH)
        ).all()
        if not queued:
            return 0
        keys = [q.idempotency_key for q in queued if q.idempotency_key]
        known = self._known_keys(conn, stream, keys, queued=False)
        seq, prev = self._head(conn, stream)
        rows, blobs = [], []
        for q in queued:
            if q.idempotency_key is not None and q.idempotency_key in known:
                continue
            seq += 1
            digest = link(prev, q.commitment, q.body)
            rows.append(
                {
                    "stream": stream, "seq": seq, "prev_hash": prev, "hash": digest,
                    "commitment": q.commitment, "body": q.body, "recorded_at": q.recorded_at,
                    "actor_kind": q.actor_kind, "actor_id": q.actor_id,
                    "event_type": q.event_type, "run_id": q.run_id, "subject_id": q.subject_id,
                    "idempotency_key": q.idempotency_key,
                }
            )  # fmt: skip
            if q.payload is not None:
                blobs.append({"stream": stream, "seq": seq, "salt": q.salt, "payload": q.payload})
            if q.idempotency_key is not None:
                known[q.idempotency_key] = seq
            prev = digest
        if rows:
            conn.execute(insert(entries), rows)
        if blobs:
            conn.execute(insert(payloads), blobs)
        conn.execute(delete(pending).where(pending.c.id.in_([q.id for q in queued])))
        return len(rows)

    def settle_all(self) -> int:
        """Settle every stream that has queued events (the sweeper's job)."""
        if not self._pg:
            return 0
        with self.engine.connect() as conn:
            streams = [s for (s,) in conn.execute(select(pending.c.stream).distinct())]
        return sum(self.settle(s) for s in streams)

    def pending_count(self, stream: str | None = None) -> int:
        """Events committed but not yet chained."""
        stmt = select(func.count()).select_from(pending)
        if stream is not None:
            stmt = stmt.where(pending.c.stream == stream)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # -- reading -----------------------------------------------------------------------------

    def rows(self, stream: str, *, after_seq: int = 0) -> Iterator[Row]:
        """Stream raw rows joined with their payloads, in seq order, in constant memory."""
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
            result = readonly(conn).execution_options(stream_results=True, yield_per=5000)
            for r in result.execute(stmt):
                yield Row(r[0], bytes(r[1]), bytes(r[2]), _b(r[3]), bytes(r[4]), _b(r[5]), _b(r[6]))

    def erasure_bodies(self, stream: str) -> Iterator[bytes]:
        """Bodies of the stream's erasure tombstones."""
        stmt = select(entries.c.body).where(
            entries.c.stream == stream, entries.c.event_type == ERASED_EVENT
        )
        with self.engine.connect() as conn:
            for (body,) in readonly(conn).execute(stmt):
                yield bytes(body)

    def head(self, stream: str) -> tuple[int, bytes | None]:
        """(size, hash of the last entry)."""
        with self.engine.connect() as conn:
            size, digest = self._head(readonly(conn), stream)
        return size, (digest if size else None)

    def hash_at(self, stream: str, seq: int) -> bytes | None:
        """The stored hash of entry `seq`."""
        stmt = select(entries.c.hash).where(entries.c.stream == stream, entries.c.seq == seq)
        with self.engine.connect() as conn:
            value = readonly(conn).execute(stmt).scalar()
        return bytes(value) if value is not None else None

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        """Recorded checkpoints, ascending by size."""
        stmt = select(checkpoints).where(checkpoints.c.stream == stream).order_by(checkpoints.c.size)
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
        if self._pg:
            self.settle(stream)  # queued events of this subject get their payload rows first
        with self.engine.begin() as conn:
            self._try_lock(conn, stream, wait=True)
            seqs = [
                s
                for (s,) in conn.execute(
                    select(payloads.c.seq)
                    .join(entries, and_(entries.c.stream == payloads.c.stream, entries.c.seq == payloads.c.seq))
                    .where(entries.c.stream == stream, entries.c.subject_id == subject_id)
                    .order_by(payloads.c.seq)
                )
            ]
            if not seqs:
                return None
            conn.execute(
                delete(payloads).where(payloads.c.stream == stream, payloads.c.seq.in_(seqs))
            )
            tomb = AuditEvent(
                event_type=ERASED_EVENT,
                actor=actor,
                subject_id=subject_id,
                data={"erased_seqs": seqs, "count": len(seqs)},
            )
            return self._chain(conn, stream, [seal(tomb)])[0]


def _b(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


def _entry_row(stream: str, seq: int, prev: bytes, digest: bytes, s: Sealed) -> dict[str, Any]:
    e = s.event
    return {
        "stream": stream,
        "seq": seq,
        "prev_hash": prev,
        "hash": digest,
        "commitment": s.commitment,
        "body": s.body,
        "recorded_at": s.recorded_at,
        "actor_kind": e.actor.kind.value,
        "actor_id": e.actor.id,
        "event_type": e.event_type,
        "run_id": e.run_id,
        "subject_id": e.subject_id,
        "idempotency_key": e.idempotency_key,
    }


def _duplicate(conn: Connection, stream: str, key: str, seq: int) -> AppendResult:
    if seq == 0:  # queued, not chained yet
        return AppendResult(stream=stream, seq=None, hash=None, duplicate=True, pending=True)
    digest = conn.execute(
        select(entries.c.hash).where(entries.c.stream == stream, entries.c.seq == seq)
    ).scalar()
    return AppendResult(
        stream=stream, seq=seq, hash=bytes(digest).hex() if digest else None, duplicate=True
    )
