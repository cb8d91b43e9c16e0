"""Calling the trail's server-side appends: PostgreSQL's functions, SQLite's chaining view.

The SQL store calls `audit_append` with these; so do other packages' server functions
that append audit events in the same call as their own writes (copilot's runtime does).
Named arguments (`p_stream => ...`): a migration that reorders or renames a parameter
fails the call loudly instead of shifting every value.

SQLite has no server functions, so `sqlite_chain` gives a connection the same thing as a
view: a row inserted into `temp.audit_chain` is chained after the stream's head by an
INSTEAD OF trigger, in the inserting statement (so in its transaction), with the link
hash computed by `audit.chain.link` registered as the SQL function `audit_link`. Another
package's trigger inserts into it to append events in the same statement as its writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit.chain import Sealed, genesis, link

# The event columns, in the functions' parameter names (singular in audit_append_one).
EVENT_COLUMNS = ("recorded_at", "actor_kind", "actor_id", "event_type", "run_id", "subject_id")
EVENT_CASTS = {
    **{p: "::bytea[]" for p in ("commitments", "bodies", "salts", "payloads")},
    **{p: "::text[]" for p in (*EVENT_COLUMNS, "keys")},
}
# What a function that appends takes for its events, as `audit_append` does (less the mode).
EVENT_ARGS = ("stream", "genesis", "commitments", "bodies", "salts", "payloads",
              *EVENT_COLUMNS, "keys")  # fmt: skip


def named_call(function: str, params: Sequence[str], *, casts: dict[str, str] | None = None) -> str:
    """`function(p_a => %(a)s, ...)`: each parameter by its name, its value by ours."""
    casts = casts or {}
    args = ", ".join(f"p_{p} => %({p})s{casts.get(p, '')}" for p in params)
    return f"{function}({args})"


def event_params(stream: str, sealed: Sequence[Sealed], mode: str) -> dict[str, object]:
    """The arguments for `sealed` on `stream` (EVENT_ARGS, and `mode` for `audit_append`)."""
    ev = [s.event for s in sealed]
    return {
        "stream": stream, "genesis": genesis(stream), "mode": mode,
        "commitments": [s.commitment for s in sealed], "bodies": [s.body for s in sealed],
        "salts": [s.salt for s in sealed], "payloads": [s.personal for s in sealed],
        "recorded_at": [s.recorded_at for s in sealed],
        "actor_kind": [e.actor.kind.value for e in ev], "actor_id": [e.actor.id for e in ev],
        "event_type": [e.event_type for e in ev], "run_id": [e.run_id for e in ev],
        "subject_id": [e.subject_id for e in ev], "keys": [e.idempotency_key for e in ev],
    }  # fmt: skip


# The columns of `temp.audit_chain`, one row per event (stream and genesis included).
CHAIN_COLUMNS = ("stream", "genesis", "commitment", "body", "salt", "payload", *EVENT_COLUMNS)
_CHAIN = "CREATE TEMP VIEW IF NOT EXISTS audit_chain AS SELECT " + ", ".join(
    f"NULL AS {c}" for c in CHAIN_COLUMNS
)
# The head by the primary key (stream, seq), or the genesis for a new stream; the new entry
# after it. The statement runs under SQLite's write lock (every write statement takes it
# first), so no other writer can move the head between the read and the insert.
_CHAIN_TRIGGER = """
CREATE TEMP TRIGGER IF NOT EXISTS audit_chain_append INSTEAD OF INSERT ON audit_chain BEGIN
    INSERT INTO audit_entries (stream, seq, prev_hash, hash, commitment, body, recorded_at,
                               actor_kind, actor_id, event_type, run_id, subject_id,
                               idempotency_key)
    SELECT NEW.stream, coalesce(h.seq, 0) + 1, coalesce(h.hash, NEW.genesis),
           audit_link(coalesce(h.hash, NEW.genesis), NEW.commitment, NEW.body),
           NEW.commitment, NEW.body, NEW.recorded_at, NEW.actor_kind, NEW.actor_id,
           NEW.event_type, NEW.run_id, NEW.subject_id, NULL
    FROM (SELECT 1) LEFT JOIN (SELECT seq, hash FROM audit_entries WHERE stream = NEW.stream
                               ORDER BY seq DESC LIMIT 1) AS h ON 1;
    INSERT INTO audit_payloads (stream, seq, salt, payload)
    SELECT NEW.stream, seq, NEW.salt, NEW.payload FROM audit_entries
    WHERE stream = NEW.stream AND NEW.payload IS NOT NULL ORDER BY seq DESC LIMIT 1;
END
"""


def _link(prev: bytes, commitment: bytes | None, body: bytes) -> bytes:
    return link(prev, commitment, body)


def sqlite_chain(dbapi: Any) -> None:
    """Give a sqlite3 connection `temp.audit_chain` and the `audit_link` function it uses.

    Per connection (temporary objects, and a function of this process): nothing is added
    to the database file, and a connection without them never sees them. Events with an
    idempotency key do not go this way (a repeated key would fail, not be reported).
    """
    dbapi.create_function("audit_link", 3, _link, deterministic=True)
    dbapi.execute(_CHAIN)
    dbapi.execute(_CHAIN_TRIGGER)


def chain_rows(stream: str, sealed: Sequence[Sealed]) -> list[tuple[Any, ...]]:
    """`sealed` as `temp.audit_chain` rows (CHAIN_COLUMNS), in order."""
    start = genesis(stream)
    rows = []
    for s in sealed:
        e = s.event
        if e.idempotency_key is not None:
            raise ValueError("events with an idempotency key are appended by the store")
        rows.append((stream, start, s.commitment, s.body, s.salt, s.personal, s.recorded_at,
                     e.actor.kind.value, e.actor.id, e.event_type, e.run_id, e.subject_id))  # fmt: skip
    return rows


__all__ = [
    "CHAIN_COLUMNS",
    "EVENT_ARGS",
    "EVENT_CASTS",
    "EVENT_COLUMNS",
    "chain_rows",
    "event_params",
    "named_call",
    "sqlite_chain",
]
