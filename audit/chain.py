"""The hash chain: how an entry's bytes and hash are formed.

Byte for byte (the README repeats this for independent verifiers):

    genesis(stream)  = SHA-256(b"copilot.audit.v1\\x00" || UTF-8(stream))
    body             = RFC 8785 canonical JSON of
                       {"actor": {"id", "kind"}, "data", "event_type", "recorded_at",
                        "run_id", "subject_id", "v": 1, "versions"}
    commitment       = SHA-256(salt || canonical(personal)) when the event has an
                       erasable part, else 32 zero bytes
    hash(seq)        = SHA-256(prev_hash || commitment || body)
                       where prev_hash = hash(seq - 1), or genesis(stream) for seq 1

All hashes are raw 32-byte digests inside the hash input and lowercase hex outside it.
The stream and seq are not in the body: the genesis binds the chain to its stream and
each link binds an entry to its position, so neither can be changed without breaking it.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

from audit.canonical import canonical
from audit.model import AuditEvent

FORMAT_VERSION = 1
ZERO = bytes(32)
SALT_BYTES = 16


def genesis(stream: str) -> bytes:
    """The `prev_hash` of a stream's first entry."""
    return hashlib.sha256(b"copilot.audit.v1\x00" + stream.encode()).digest()


def link(prev_hash: bytes, commitment: bytes | None, body: bytes) -> bytes:
    """The hash of an entry given its predecessor's hash."""
    return hashlib.sha256(prev_hash + (commitment or ZERO) + body).digest()


def commit_personal(personal: bytes, salt: bytes) -> bytes:
    """The commitment to an erasable payload's canonical bytes."""
    return hashlib.sha256(salt + personal).digest()


def timestamp(now: datetime | None = None) -> str:
    """`recorded_at` in its one format: UTC, microseconds, `Z` (sorts as text)."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Sealed:
    """An event encoded for the chain: body, optional erasable payload, its salt and commitment."""

    __slots__ = ("body", "commitment", "event", "personal", "recorded_at", "salt")

    def __init__(self, event: AuditEvent, recorded_at: str, salt: bytes | None = None) -> None:
        self.event = event
        self.recorded_at = recorded_at
        self.body = canonical(
            {
                "v": FORMAT_VERSION,
                "recorded_at": recorded_at,
                "actor": {"kind": event.actor.kind.value, "id": event.actor.id},
                "event_type": event.event_type,
                "run_id": event.run_id,
                "subject_id": event.subject_id,
                "versions": event.versions.given(),
                "data": event.data,
            }
        )
        self.personal: bytes | None = None
        self.salt: bytes | None = None
        self.commitment: bytes | None = None
        if event.personal is not None:
            self.personal = canonical(event.personal)
            self.salt = salt if salt is not None else os.urandom(SALT_BYTES)
            self.commitment = commit_personal(self.personal, self.salt)


def seal(event: AuditEvent, recorded_at: str | None = None, *, salt: bytes | None = None) -> Sealed:
    """Encode an event (canonical bytes, salted commitment) before it takes a place in a chain.

    `salt` is random unless given (golden vectors give it).
    """
    return Sealed(event, recorded_at or timestamp(), salt)
