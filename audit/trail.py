"""The trail's operations over any store: checkpoint, verify, erase."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from audit.errors import CheckpointRefusedError
from audit.model import Actor, AppendResult, Checkpoint
from audit.signing import Signer
from audit.stores import AuditStore
from audit.verify import Verdict, tombstoned, verify_chain


class CheckpointLog:
    """The signer's own record of what it signed, kept beside its key, outside the database.

    A database restored from an old backup carries old checkpoints, so the signer cannot
    trust the database to tell it what it signed last; this file can.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, stream: str) -> list[Checkpoint]:
        """Checkpoints signed for `stream`, in signing order."""
        if not self.path.exists():
            return []
        out = []
        with self.path.open() as f:
            for line in f:
                if line.strip():
                    cp = Checkpoint.model_validate_json(line)
                    if cp.stream == stream:
                        out.append(cp)
        return out

    def append(self, cp: Checkpoint) -> None:
        """Record a checkpoint durably before it is published."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(cp.model_dump_json() + "\n")
            f.flush()


class Trail:
    """An audit store plus the signer that vouches for it.

    >>> from audit import MemoryAuditStore, AuditEvent, Actor, Signer
    >>> trail = Trail(MemoryAuditStore(), Signer.generate())
    >>> _ = trail.store.append("acme", [AuditEvent(event_type="demo", actor=Actor.system())])
    >>> trail.verify("acme").line()
    'OK 1 entries'
    """

    def __init__(
        self,
        store: AuditStore,
        signer: Signer | None = None,
        *,
        log: CheckpointLog | None = None,
        trusted: Mapping[str, bytes] | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.log = log
        self.trusted = dict(trusted or {})

    def trusted_keys(self) -> dict[str, bytes]:
        """Keys whose checkpoints this trail accepts: its signer's and the configured public keys."""
        keys = dict(self.trusted)
        if self.signer is not None:
            keys[self.signer.key_id] = self.signer.public_raw
        return keys

    def known_checkpoints(self, stream: str) -> list[Checkpoint]:
        """Checkpoints from the database and from the signer's log, without repeats."""
        seen: dict[tuple[int, str, str], Checkpoint] = {}
        for cp in [*self.store.checkpoints(stream), *(self.log.read(stream) if self.log else [])]:
            seen.setdefault((cp.size, cp.key_id, cp.signature), cp)
        return sorted(seen.values(), key=lambda c: c.size)

    def checkpoint(self, stream: str) -> Checkpoint:
        """Sign the stream's current head, refusing one that does not extend the last checkpoint."""
        if self.signer is None:
            raise CheckpointRefusedError("no signing key configured; set COPILOT_SIGNING_KEY_PATH")
        self.store.settle(stream)
        size, head = self.store.head(stream)
        previous = [c for c in self.known_checkpoints(stream) if c.key_id == self.signer.key_id]
        last = previous[-1] if previous else None
        if last is not None:
            if size < last.size:
                raise CheckpointRefusedError(
                    f"stream {stream!r} has {size} entries but was signed at {last.size}: the "
                    "database lost entries (restored from an old backup, or truncated); "
                    "investigate before signing again",
                    stream=stream, size=size, checkpoint_size=last.size,
                )  # fmt: skip
            at = self.store.hash_at(stream, last.size) if last.size else None
            if last.size and (at is None or at.hex() != last.head):
                raise CheckpointRefusedError(
                    f"stream {stream!r} no longer has the head signed at size {last.size}: "
                    "the chain was rewritten; run `copilot audit verify` to find where",
                    stream=stream, checkpoint_size=last.size,
                )  # fmt: skip
            if size == last.size:
                return last
        cp = self.signer.sign(stream, size, head.hex() if head else "0" * 64)
        if self.log is not None:
            self.log.append(cp)
        self.store.add_checkpoint(cp)
        return cp

    def verify(self, stream: str, *, trusted_keys: Mapping[str, bytes] | None = None) -> Verdict:
        """Walk the stream once and check it against every known checkpoint."""
        # Chain what busy writers queued, so it is verified too; a chain lock that stays busy
        # (a frozen holder) leaves the queue to be reported instead of hanging the verifier.
        busy = self.store.settle(stream) < 0
        erased = tombstoned(self.store.erasures(stream))
        with closing(self.store.rows(stream)) as rows:
            verdict = verify_chain(
                stream,
                rows,
                checkpoints=self.known_checkpoints(stream),
                trusted_keys=trusted_keys if trusted_keys is not None else self.trusted_keys(),
                erased=erased,
            )
        queued = getattr(self.store, "pending_count", None)
        if busy and callable(queued):
            return replace(verdict, queued=int(queued(stream)))
        return verdict

    def erase_subject(self, stream: str, subject_id: str, actor: Actor) -> AppendResult | None:
        """Erase a subject's personal payloads; the chain keeps verifying."""
        return self.store.erase_subject(stream, subject_id, actor)


def dump_checkpoints(cps: list[Checkpoint]) -> str:
    """Checkpoints as JSON lines."""
    return "".join(json.dumps(cp.model_dump(), sort_keys=True) + "\n" for cp in cps)
