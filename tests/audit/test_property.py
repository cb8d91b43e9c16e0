"""Property: verification passes if and only if nothing was tampered with."""

from __future__ import annotations

import hashlib
import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from audit import Actor, AuditEvent, MemoryAuditStore, Signer, Trail, genesis
from audit.verify import INDEX_COLUMNS, Row

SIGNER = Signer.generate()
TAMPERS = [
    "none", "body", "hash", "prev_hash", "commitment", "delete", "swap", "truncate",
    "duplicate", "payload", "drop_payload", "rewrite", "forge_checkpoint", "index",
]  # fmt: skip

events = st.lists(
    st.builds(
        lambda subject, value, personal: AuditEvent(
            event_type="step.completed",
            actor=Actor.agent("rules"),
            subject_id=f"s{subject}",
            data={"value": value},
            personal={"note": personal} if personal is not None else None,
        ),
        st.integers(0, 3),
        st.integers(-1000, 1000) | st.text(max_size=8),
        st.none() | st.text(max_size=12),
    ),
    min_size=1,
    max_size=12,
)


def flip(data: bytes, at: int) -> bytes:
    """Change one byte (so the value really differs)."""
    i = at % len(data)
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def columns(body: bytes) -> list[object]:
    """The index columns' values an honest store keeps for this body."""
    doc = json.loads(body)
    return [doc["recorded_at"], doc["actor"]["kind"], doc["actor"]["id"], doc["event_type"],
            doc["run_id"], doc["subject_id"]]  # fmt: skip


def tamper(rows: list[Row], how: str, k: int, trail: Trail) -> None:
    n = len(rows)
    i = k % n
    r = rows[i]
    if how == "body":
        rows[i] = r._replace(body=flip(r.body, k))
    elif how == "hash":
        rows[i] = r._replace(hash=flip(r.hash, k))
    elif how == "prev_hash":
        rows[i] = r._replace(prev_hash=flip(r.prev_hash, k))
    elif how == "commitment":
        rows[i] = r._replace(commitment=flip(r.commitment or bytes(32), k))
    elif how == "delete":
        del rows[i]
    elif how == "swap":
        assume(n >= 2)
        j = (i + 1 + k // n % (n - 1)) % n
        rows[i], rows[j] = rows[j]._replace(seq=r.seq), r._replace(seq=rows[j].seq)
    elif how == "truncate":
        del rows[i:]
    elif how == "duplicate":
        rows.insert(i + 1, r)
    elif how == "payload":
        assume(r.payload is not None)
        rows[i] = r._replace(payload=flip(r.payload or b"", k))
    elif how == "drop_payload":
        assume(r.payload is not None)
        rows[i] = r._replace(payload=None, salt=None)
    elif how == "rewrite":  # forge one entry, then recompute every later hash
        prev = rows[i - 1].hash if i else genesis("acme")
        for j in range(i, n):
            body = rows[j].body + b" " if j == i else rows[j].body
            digest = hashlib.sha256(prev + (rows[j].commitment or bytes(32)) + body).digest()
            rows[j] = rows[j]._replace(prev_hash=prev, hash=digest, body=body)
            prev = digest
    elif how == "index":  # one index column changed (what a query filters on), body intact
        values = columns(r.body)
        at = k % len(INDEX_COLUMNS)
        old = values[at]
        values[at] = (None, "x", f"{old}x", 7)[k // len(INDEX_COLUMNS) % 4] if old else "s0"
        assume(values[at] != old)
        rows[i] = r._replace(**dict(zip(INDEX_COLUMNS, values, strict=True)))
    elif how == "forge_checkpoint":
        cp = trail.store.checkpoints("acme")[-1]
        forged = cp.model_copy(update={"head": flip(bytes.fromhex(cp.head), k).hex()})
        trail.store._checkpoints["acme"] = [forged]  # type: ignore[attr-defined]


@settings(max_examples=400, deadline=None)
@given(events, st.sampled_from(TAMPERS), st.integers(0, 10_000), st.none() | st.integers(0, 3))
def test_verification_passes_iff_nothing_was_tampered_with(
    batch: list[AuditEvent], how: str, k: int, erase: int | None
) -> None:
    store = MemoryAuditStore()
    trail = Trail(store, SIGNER)
    for event in batch:
        store.append("acme", [event])
    if erase is not None:  # a lawful erasure is not tampering
        trail.erase_subject("acme", f"s{erase}", Actor.human("dpo"))
    trail.checkpoint("acme")
    tamper(store.entries["acme"], how, k, trail)
    verdict = trail.verify("acme")
    assert verdict.ok == (how == "none"), (how, verdict.line())
