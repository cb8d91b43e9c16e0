"""Deadlines: when a request is due, and what its kind says happens when it passes.

A request's deadline is set from its kind (`expires_after`) when it is proposed. Past it,
the kind's `on_expiry` rule applies: escalate to another role with a fresh deadline
(once: an escalated request that passes its deadline again expires), approve it if its
risk is low and no person must see it, or expire it (the run continues on its fallback
path). The gate's `expire_due` applies the rule to each overdue request, one
transaction each, re-checking the request under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from approvals.kinds import ActionKind, Catalog, OnExpiry, Risk
from approvals.request import PENDING, ApprovalRequest
from approvals.tables import requests


def deadline(catalog: Catalog, kind: str, now: float) -> float:
    """When a request of `kind` proposed `now` is due (an unknown kind's at once)."""
    if kind not in catalog:
        return now
    return now + catalog.get(kind).expires_after.total_seconds()


def due(conn: Connection, now: float) -> list[str]:
    """Ids of the pending requests whose deadline has passed."""
    stmt = select(requests.c.id).where(requests.c.status == PENDING, requests.c.deadline < now)
    return list(conn.execute(stmt).scalars())


@dataclass(frozen=True)
class Escalate:
    """Hand the request to another role, with a new deadline."""

    role: str
    deadline: float


@dataclass(frozen=True)
class Settle:
    """Close the request: `approved` (low risk) or `expired`, with the reason recorded."""

    status: str
    reason: str


def on_expiry(req: ApprovalRequest, kind: ActionKind, now: float) -> Escalate | Settle:
    """What the kind's expiry rule does with `req`, overdue at `now`."""
    if kind.on_expiry == OnExpiry.ESCALATE and req.role != kind.escalate_to:
        return Escalate(role=kind.escalate_to, deadline=now + kind.expires_after.total_seconds())
    if (
        kind.on_expiry == OnExpiry.AUTO_APPROVE_LOW
        and req.risk == Risk.LOW
        and not kind.requires_person
    ):
        return Settle(status="approved", reason="deadline passed; low risk")
    return Settle(status="expired", reason="deadline passed")


__all__ = ["Escalate", "Settle", "deadline", "due", "on_expiry"]
