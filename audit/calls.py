"""Calling the trail's PostgreSQL functions: named arguments, and the event arrays they take.

The SQL store calls `audit_append` with these; so do other packages' server functions
that append audit events in the same call as their own writes (copilot's runtime does).
Named arguments (`p_stream => ...`): a migration that reorders or renames a parameter
fails the call loudly instead of shifting every value.
"""

from __future__ import annotations

from collections.abc import Sequence

from audit.chain import Sealed, genesis

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


__all__ = ["EVENT_ARGS", "EVENT_CASTS", "EVENT_COLUMNS", "event_params", "named_call"]
