"""Where entries live. `AuditStore` is the protocol; `sql` is the product, `memory` for unit tests.

`TransactionalAuditLog` is the one write the product's writers use: events appended inside
the transaction that makes the change they record, so the change and its record commit
(or roll back) together. Writers depend on it, not on the SQL class.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

from audit.model import Actor, AppendResult, AuditEvent, Checkpoint, Entry
from audit.verify import Row

if TYPE_CHECKING:  # only an annotation: `audit` (and the HTTP client) load no SQL toolkit
    from sqlalchemy import Connection


class Query(BaseModel):
    """Filters for reading a stream; results ascend by seq, `after_seq` pages forward."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str | None = None
    subject_id: str | None = None
    actor_id: str | None = None
    actor_kind: str | None = None
    event_type: str | None = None
    since: str | None = None
    until: str | None = None
    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)
    with_personal: bool = False


class AuditStore(Protocol):
    """Storage for hash-chained streams.

    Appends are atomic per call: every event of a call lands, in order, or none does.
    """

    def append(self, stream: str, events: Sequence[AuditEvent]) -> list[AppendResult]:
        """Append events in their own transaction; a redelivered idempotency key is a no-op."""
        ...

    def rows(self, stream: str, *, after_seq: int = 0) -> Generator[Row, None, None]:
        """Stream the chain's raw rows in seq order (what verification and export read)."""
        ...

    def erasures(self, stream: str) -> Iterator[tuple[int, bytes]]:
        """(seq, body) of the stream's `audit.erased` entries (the tombstones)."""
        ...

    def head(self, stream: str) -> tuple[int, bytes | None]:
        """(number of chained entries, hash of the last one)."""
        ...

    def hash_at(self, stream: str, seq: int) -> bytes | None:
        """The stored hash of entry `seq`, if it exists."""
        ...

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        """Signed checkpoints recorded for the stream, ascending by size."""
        ...

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Record a signed checkpoint (idempotent)."""
        ...

    def erase_subject(self, stream: str, subject_id: str, actor: Actor) -> AppendResult | None:
        """Delete the subject's erasable payloads and append one tombstone, atomically."""
        ...

    def query(self, stream: str, query: Query) -> list[Entry]:
        """Entries matching `query`."""
        ...

    def streams(self) -> list[str]:
        """Every stream that has entries."""
        ...

    def settle(self, stream: str) -> int:
        """Chain entries still queued for `stream`; returns how many were chained."""
        ...


class TransactionalAuditLog(Protocol):
    """Appends inside the caller's transaction (a SQLAlchemy connection with one open)."""

    def append_in(
        self, conn: Connection, stream: str, events: Sequence[AuditEvent]
    ) -> list[AppendResult]:
        """Append `events` to `stream` in `conn`'s transaction: they commit or roll back with it.

        Every event of a call lands, in order, or none does; a redelivered idempotency key
        is a no-op. A result may be `pending` (queued behind another writer, durable with the
        caller's commit, chained by the next writer or `AuditStore.settle`).
        """
        ...

    def append_call(
        self, stream: str, events: Sequence[AuditEvent], *, wait: bool = False
    ) -> tuple[str, dict[str, object]]:
        """`append_in` as one statement (psycopg's named style) and its arguments, for a
        transaction the caller runs on a driver of its own; PostgreSQL only."""
        ...


__all__ = ["AuditStore", "Query", "TransactionalAuditLog"]
