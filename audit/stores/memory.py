"""An in-memory `AuditStore` for unit tests of logic. Not durable; one process only."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence

from audit.chain import Sealed, genesis, link, seal
from audit.model import Actor, AppendResult, AuditEvent, Checkpoint, Entry
from audit.stores import Query
from audit.verify import ERASED_EVENT, Row, index_of


class MemoryAuditStore:
    """Keeps streams in lists; the verifier sees exactly the rows a SQL store would give it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: dict[str, list[Row]] = {}
        self._meta: dict[str, list[Entry]] = {}
        self._keys: dict[str, dict[str, int]] = {}
        self._checkpoints: dict[str, list[Checkpoint]] = {}

    def append(self, stream: str, events: Sequence[AuditEvent]) -> list[AppendResult]:
        """Append events atomically under a lock."""
        sealed = [seal(e) for e in events]
        with self._lock:
            return [self._append_one(stream, s) for s in sealed]

    def _append_one(self, stream: str, s: Sealed) -> AppendResult:
        keys = self._keys.setdefault(stream, {})
        key = s.event.idempotency_key
        rows = self.entries.setdefault(stream, [])
        if key is not None and key in keys:
            seq = keys[key]
            known = rows[seq - 1].hash.hex()
            return AppendResult(stream=stream, seq=seq, hash=known, duplicate=True)
        prev = rows[-1].hash if rows else genesis(stream)
        digest = link(prev, s.commitment, s.body)
        seq = len(rows) + 1
        rows.append(Row(seq, prev, digest, s.commitment, s.body, s.salt, s.personal, *index_of(s)))
        self._meta.setdefault(stream, []).append(self._entry(stream, rows[-1]))
        if key is not None:
            keys[key] = seq
        return AppendResult(stream=stream, seq=seq, hash=digest.hex())

    @staticmethod
    def _entry(stream: str, row: Row) -> Entry:
        return Entry.from_row(
            stream=stream,
            seq=row.seq,
            prev_hash=row.prev_hash,
            hash=row.hash,
            commitment=row.commitment,
            body=row.body,
            payload=row.payload,
        )

    def rows(self, stream: str, *, after_seq: int = 0) -> Generator[Row, None, None]:
        """The stored rows, as they are now (tests tamper with `entries` directly)."""
        yield from (r for r in list(self.entries.get(stream, [])) if r.seq > after_seq)

    def erasures(self, stream: str) -> Iterator[tuple[int, bytes]]:
        """(seq, body) of tombstone events."""
        for e in self._meta.get(stream, []):
            if e.event_type == ERASED_EVENT:
                yield e.seq, e.body.encode()

    def head(self, stream: str) -> tuple[int, bytes | None]:
        """(size, last hash)."""
        rows = self.entries.get(stream, [])
        return (rows[-1].seq, rows[-1].hash) if rows else (0, None)

    def hash_at(self, stream: str, seq: int) -> bytes | None:
        """Hash of entry `seq`."""
        for r in self.entries.get(stream, []):
            if r.seq == seq:
                return r.hash
        return None

    def checkpoints(self, stream: str) -> list[Checkpoint]:
        """Recorded checkpoints."""
        return sorted(self._checkpoints.get(stream, []), key=lambda c: c.size)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Record a checkpoint once."""
        cps = self._checkpoints.setdefault(checkpoint.stream, [])
        if checkpoint not in cps:
            cps.append(checkpoint)

    def erase_subject(self, stream: str, subject_id: str, actor: Actor) -> AppendResult | None:
        """Drop payloads of the subject's entries and append a tombstone."""
        with self._lock:
            rows = self.entries.get(stream, [])
            metas = self._meta.get(stream, [])
            seqs = [
                m.seq
                for m in metas
                if m.subject_id == subject_id and rows[m.seq - 1].payload is not None
            ]
            if not seqs:
                return None
            for seq in seqs:
                rows[seq - 1] = rows[seq - 1]._replace(payload=None, salt=None)
            event = AuditEvent(
                event_type=ERASED_EVENT,
                actor=actor,
                subject_id=subject_id,
                data={"erased_seqs": seqs, "count": len(seqs)},
            )
            return self._append_one(stream, seal(event))

    def query(self, stream: str, query: Query) -> list[Entry]:
        """Filter entries in memory."""
        out: list[Entry] = []
        rows = self.entries.get(stream, [])
        for m in self._meta.get(stream, []):
            if m.seq <= query.after_seq or not _matches(m, query):
                continue
            row = rows[m.seq - 1]
            personal = self._entry(stream, row).personal if query.with_personal else None
            erased = row.commitment is not None and row.payload is None
            out.append(m.model_copy(update={"personal": personal, "erased": erased}))
            if len(out) == query.limit:
                break
        return out

    def streams(self) -> list[str]:
        """Streams with entries."""
        return sorted(s for s, rows in self.entries.items() if rows)

    def settle(self, stream: str) -> int:
        """Nothing is ever queued in memory."""
        return 0


def _matches(e: Entry, q: Query) -> bool:
    return all(
        (
            q.run_id is None or e.run_id == q.run_id,
            q.subject_id is None or e.subject_id == q.subject_id,
            q.actor_id is None or e.actor.id == q.actor_id,
            q.actor_kind is None or e.actor.kind == q.actor_kind,
            q.event_type is None or e.event_type == q.event_type,
            q.since is None or e.recorded_at >= q.since,
            q.until is None or e.recorded_at < q.until,
        )
    )
