"""The trail's tables (SQLAlchemy Core) and the layout of an entry row; migrations create them.

`audit_entries` is the chain; `audit_payloads` holds the erasable personal content the
chain commits to (deleted on erasure, the chain still verifies); `audit_pending` queues
events a busy PostgreSQL writer could not chain at once; `audit_checkpoints` holds signed
heads. Only the audit package reads or writes them (an import contract keeps it so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from audit.chain import Sealed, genesis, link
from audit.model import AppendResult

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

# The columns of an entry row as `link_rows` lays it out (the dialects' bulk inserts).
COLUMNS = (
    "stream, seq, prev_hash, hash, commitment, body, recorded_at, actor_kind, actor_id, "
    "event_type, run_id, subject_id, idempotency_key"
)


def link_rows(
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


__all__ = ["COLUMNS", "checkpoints", "entries", "link_rows", "metadata", "payloads", "pending"]
