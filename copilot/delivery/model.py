"""The delivery record and its states: `ready -> claimed -> delivered | failed -> dead`.

`failed` is "retrying": the action is claimable again at `next_attempt_at`, after a capped
exponential backoff. After `max_attempts` claims that did not deliver it is `dead`, until a
person retries it (back to `ready`, attempts from zero) or cancels it (`cancelled`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class State(StrEnum):
    """Where an approved action stands on its way to the app."""

    READY = "ready"
    CLAIMED = "claimed"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


# A claimable row is one of these whose `due_at` has passed (an expired claim included).
CLAIMABLE = (State.READY.value, State.FAILED.value, State.CLAIMED.value)
SETTLED = frozenset({State.DELIVERED, State.DEAD, State.CANCELLED})
OUTBOX = "outbox"  # the route whose actions the app pulls from the feed


def backoff(attempts: int, *, base: float, cap: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base·2^(n-1), capped."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


class Delivery(BaseModel):
    """One approved action on its way to the app, as stored."""

    model_config = ConfigDict(frozen=True)

    id: int
    idempotency_key: str
    tenant: str
    run_id: str | None
    approval_id: str | None
    subject_id: str | None
    kind: str
    route: str
    payload: dict[str, Any]
    state: State
    attempts: int
    max_attempts: int
    last_error: str | None
    receipt: dict[str, Any] | None
    claim: str | None = None  # the current claim's token: only its holder sees it
    claimed_by: str | None
    claim_expires_at: float | None
    next_attempt_at: float | None
    created_at: float
    updated_at: float


__all__ = ["CLAIMABLE", "OUTBOX", "SETTLED", "Delivery", "State", "backoff"]
