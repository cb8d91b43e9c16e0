"""Verification: walk a chain once, in constant memory, and name the first bad entry.

Reason codes (stable; the CLI prints `FAIL seq=<n> <code>: <detail>`):

    hash_mismatch        the entry's bytes do not hash to its stored hash
    fork                 the entry does not link to the hash of the entry before it
    gap                  one or more seqs are missing
    duplicate            a seq appears twice (or out of order)
    payload_mismatch     an erasable payload does not match the chain's commitment
    payload_missing      an erasable payload is gone with no erasure tombstone for it
    index_mismatch       an index column (event_type, actor, run, subject, time) is not what
                         the entry's body says: queries filtering on it would misfile the entry
    checkpoint_truncated a signed checkpoint covers more entries than the chain has
    checkpoint_mismatch  the chain's hash at a checkpoint's size differs from the signed head
    bad_signature        a checkpoint's signature does not verify
    unknown_key          a checkpoint is signed by a key the verifier does not trust
    manifest_mismatch    (bundles) the chain is not the one the manifest describes
    unsigned             (bundles) entries but no signed checkpoint at all
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, NamedTuple

from audit.chain import ZERO, commit_personal, genesis
from audit.model import Checkpoint
from audit.signing import check_signature

ERASED_EVENT = "audit.erased"
# The columns a store keeps beside each body for its queries to filter on, in Row order.
# (Not `idempotency_key`: it is not in the body, so nothing in the chain vouches for it;
# it only makes a retried append a no-op.)
INDEX_COLUMNS = ("recorded_at", "actor_kind", "actor_id", "event_type", "run_id", "subject_id")


class Row(NamedTuple):
    """One stored entry as the verifier reads it (payload and salt are None when absent).

    The last six fields are the entry's INDEX_COLUMNS as the store keeps them (anything,
    if tampered with), checked against the body; all None where the source keeps no such
    columns (an export bundle). Flat fields, so the SQLite store yields its cursor's
    tuples as they come.
    """

    seq: int
    prev_hash: bytes
    hash: bytes
    commitment: bytes | None
    body: bytes
    salt: bytes | None
    payload: bytes | None
    recorded_at: Any = None
    actor_kind: Any = None
    actor_id: Any = None
    event_type: Any = None
    run_id: Any = None
    subject_id: Any = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a verification."""

    stream: str
    entries: int
    checkpoints: int
    bad_seq: int | None = None
    reason: str | None = None
    detail: str = ""
    unsigned: int = 0  # entries after the last signed checkpoint
    queued: int = 0  # committed events not chained yet (the chain lock was busy): not verified

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return self.reason is None

    def line(self) -> str:
        """`OK <n> entries` or `FAIL seq=<n> <reason>: <detail>`."""
        if self.ok:
            tail = f" ({self.unsigned} after the last signed checkpoint)" if self.unsigned else ""
            if self.queued:
                tail += f" ({self.queued} queued behind the chain lock, not yet chained)"
            return f"OK {self.entries} entries{tail}"
        return f"FAIL seq={self.bad_seq} {self.reason}: {self.detail}"


class Tombstone(NamedTuple):
    """An erasure event's claim on one entry: where the claim is made, for which subject."""

    at: int
    subject_id: str | None


def tombstoned(erasures: Iterable[tuple[int, bytes]]) -> dict[int, Tombstone]:
    """The seqs chained erasure events declare erased (their hashes are checked in the walk).

    A claim counts only for an earlier entry of the same subject: `_walk` checks both, so
    a forged or misplaced tombstone cannot excuse a payload deleted elsewhere.
    """
    claims: dict[int, Tombstone] = {}
    for at, body in erasures:
        doc = json.loads(body)
        if doc.get("event_type") != ERASED_EVENT:
            continue
        for s in doc.get("data", {}).get("erased_seqs", []):
            claims[int(s)] = Tombstone(at, doc.get("subject_id"))
    return claims


def verify_chain(
    stream: str,
    rows: Iterable[Row],
    *,
    checkpoints: Iterable[Checkpoint] = (),
    trusted_keys: Mapping[str, bytes] | None = None,
    erased: Mapping[int, Tombstone] | None = None,
    payloads_withheld: bool = False,
    indexed: bool = True,
) -> Verdict:
    """Verify `rows` (ascending seq) of `stream` against its genesis, payloads and checkpoints.

    `erased` is the set of seqs declared erased by the chain's own `audit.erased`
    events (see `tombstoned`); a missing payload is accepted only for those, unless
    `payloads_withheld` (an export that leaves them out: each hash still covers its
    payload's commitment, so the chain verifies; the payloads' words are not checked).
    With `indexed` (a store's rows), each row's index columns must be what its body says;
    pass False for a source that keeps none (an export bundle).
    """
    trusted = trusted_keys or {}
    cps = [cp for cp in checkpoints if cp.stream == stream]
    failures: list[tuple[int, str, str]] = []
    heads: dict[int, str] = {}
    for cp in sorted(cps, key=lambda c: c.size):
        problem = check_signature(cp, trusted)
        if problem is not None:
            failures.append((cp.size, problem, f"checkpoint at size {cp.size} key {cp.key_id}"))
        elif heads.get(cp.size, cp.head) != cp.head:
            failures.append((cp.size, "checkpoint_mismatch", "two signed heads for one size"))
        else:
            heads[cp.size] = cp.head
    limit = min((f[0] for f in failures), default=None)

    first = _walk(stream, rows, heads, erased or {}, limit, payloads_withheld, indexed)
    count = first[0]
    if first[1] is not None:
        failures.append(first[1])
    top = max(heads, default=0)
    if top > count and not first[1]:
        failures.append(
            (
                count + 1,
                "checkpoint_truncated",
                f"signed checkpoint has {top} entries, found {count}",
            )
        )
    if failures:
        seq, reason, detail = min(failures, key=lambda f: f[0])
        return Verdict(stream, count, len(cps), seq, reason, detail)
    # The tail past the last signed checkpoint is reported once a stream has one at all.
    return Verdict(stream, count, len(cps), unsigned=count - top if top else 0)


def _walk(
    stream: str,
    rows: Iterable[Row],
    heads: Mapping[int, str],
    erased: Mapping[int, Tombstone],
    limit: int | None,
    withheld: bool,
    indexed: bool,
) -> tuple[int, tuple[int, str, str] | None]:
    """The hot loop: (entries seen, first failure or None)."""
    expected_prev = genesis(stream)
    expected = 1
    holds = _index_check()
    for (
        seq,
        prev,
        digest,
        commitment,
        body,
        salt,
        payload,
        at,
        kind,
        actor,
        event,
        run,
        sub,
    ) in rows:
        if limit is not None and seq > limit:
            return expected - 1, None
        if seq != expected:
            if seq < expected:
                return expected - 1, (
                    seq,
                    "duplicate",
                    f"seq {seq} appears again after {expected - 1}",
                )
            return expected - 1, (expected, "gap", f"seqs {expected}..{seq - 1} are missing")
        if prev != expected_prev:
            return expected - 1, (seq, "fork", f"prev_hash does not link to seq {seq - 1}")
        if sha256(prev + (commitment or ZERO) + body).digest() != digest:  # chain.link, inlined
            return expected - 1, (seq, "hash_mismatch", "entry bytes do not match its hash")
        if commitment is not None:
            if withheld and payload is None:
                pass  # the export left it out; the hash above covers its commitment
            elif payload is None or salt is None:
                claim = erased.get(seq)
                if claim is None or not _claim_holds(claim, seq, body):
                    return expected - 1, (
                        seq,
                        "payload_missing",
                        "erasable payload gone without a tombstone",
                    )
            elif commit_personal(payload, salt) != commitment:
                return expected - 1, (
                    seq,
                    "payload_mismatch",
                    "payload does not match its commitment",
                )
        elif payload is not None:
            return expected - 1, (
                seq,
                "payload_mismatch",
                "payload stored for an entry that commits to none",
            )
        if indexed and not holds(body, at, kind, actor, event, run, sub):
            wrong = ", ".join(index_diff(body, (at, kind, actor, event, run, sub)))
            return expected - 1, (seq, "index_mismatch", f"column {wrong} differs from the body")
        if seq in heads and heads[seq] != digest.hex():
            return expected - 1, (
                seq,
                "checkpoint_mismatch",
                "hash differs from the signed checkpoint",
            )
        expected_prev = digest
        expected = seq + 1
    return expected - 1, None


def _claim_holds(claim: Tombstone, seq: int, body: bytes) -> bool:
    """A tombstone excuses a missing payload only for an earlier entry of its own subject."""
    if claim.at <= seq:
        return False
    return bool(json.loads(body).get("subject_id") == claim.subject_id)


# -- index columns against the body ---------------------------------------------------------

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_MARK = b',"v":1,"versions":'  # follows the tail; `versions` holds only strings after it
_Check = Callable[[bytes, Any, Any, Any, Any, Any, Any], bool]


def _index_check() -> _Check:
    """`holds(body, *index columns)`: True when the columns are the body's values.

    A v1 body is canonical JSON with sorted keys (`audit.chain`): it opens with
    `{"actor":{"id":..,"kind":..},"data":` and after the data holds `,"event_type":..,
    "recorded_at":..,"run_id":..,"subject_id":..` then `,"v":1,"versions":` (its last
    occurrence is the top-level one: `versions` holds only strings). So the check is two
    byte comparisons against the columns' exact JSON (the encoder the body was written
    with), each piece remembered (actors, types, runs and subjects repeat; this runs per
    entry, so no function call on a hit). Equal bytes mean equal values; a value JSON
    cannot hold (a BLOB) never matches.
    """
    heads: dict[Any, bytes] = {}
    pieces: tuple[dict[Any, bytes], ...] = ({}, {}, {}, {})
    events, ats, runs, subjects = pieces
    names = (b',"event_type":', b',"recorded_at":', b',"run_id":', b',"subject_id":')

    def piece(at: int, value: Any) -> bytes:
        known = pieces[at]
        if len(known) > 10_000:  # bounded: memory stays constant over any chain
            known.clear()
        found = names[at] + _dumps(value).encode()  # TypeError for bytes, UnicodeError
        if type(value) is str or value is None:  # keys that cannot collide (1 == 1.0 == True)
            known[value] = found
        return found

    def head_of(actor: Any, kind: Any) -> bytes:
        if len(heads) > 10_000:
            heads.clear()
        found = b'{"actor":{"id":' + _dumps(actor).encode() + b',"kind":' + _dumps(kind).encode()
        if type(actor) is str and type(kind) is str:
            heads[actor, kind] = found + b'},"data":'
        return found + b'},"data":'

    def holds(
        body: bytes, at: Any, kind: Any, actor: Any, event: Any, run: Any, subject: Any
    ) -> bool:
        try:
            head = heads.get((actor, kind)) or head_of(actor, kind)
            if not body.startswith(head):
                return False
            tail = b"".join((
                events.get(event) or piece(0, event), ats.get(at) or piece(1, at),
                runs.get(run) or piece(2, run), subjects.get(subject) or piece(3, subject), _MARK,
            ))  # fmt: skip
        except (TypeError, ValueError):
            return False
        return body.endswith(tail, len(head), body.rfind(_MARK) + len(_MARK))

    return holds


def index_diff(body: bytes, index: Sequence[Any]) -> list[str]:
    """The INDEX_COLUMNS whose stored value is not the body's (all of them if it is no JSON)."""
    try:
        doc = json.loads(body)
        actor = doc.get("actor") or {}
        truth = (doc.get("recorded_at"), actor.get("kind"), actor.get("id"),
                 doc.get("event_type"), doc.get("run_id"), doc.get("subject_id"))  # fmt: skip
    except (ValueError, AttributeError, RecursionError):
        return list(INDEX_COLUMNS)
    return [
        name
        for name, stored, real in zip(INDEX_COLUMNS, index, truth, strict=True)
        if type(stored) is not type(real) or stored != real
    ]


def index_of(sealed: Any) -> tuple[Any, ...]:
    """The index columns of a sealed event (`audit.chain.Sealed`), as a store writes them."""
    e = sealed.event
    return (sealed.recorded_at, e.actor.kind.value, e.actor.id, e.event_type, e.run_id,
            e.subject_id)  # fmt: skip
