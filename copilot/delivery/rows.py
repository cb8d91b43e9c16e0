"""The delivery store's reading side and its building blocks: records, policy, events.

`DeliveryStore` (copilot/delivery/store.py) adds every state change on top of this.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from audit import Actor, AuditEvent, TransactionalAuditLog
from audit.db import readonly
from copilot.db.tables import deliveries
from copilot.delivery.errors import DeliveryNotFoundError
from copilot.delivery.model import CLAIMABLE, OUTBOX, Delivery, State

MAX_ERROR = 2000  # characters of an error kept on the row (the audit event keeps it erasable)


@dataclass(frozen=True)
class Policy:
    """Retry policy: attempts before `dead`, the backoff's base and cap, the claim's lease."""

    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    visibility: float = 30.0
    push_lease: float = 300.0  # an engine attempt (a webhook's own retries included) holds it


@dataclass(frozen=True)
class NewDelivery:
    """What opening a delivery needs: the action, its route and where it came from."""

    idempotency_key: str
    tenant: str
    kind: str
    route: str
    payload: dict[str, Any]
    run_id: str | None = None
    approval_id: str | None = None
    subject_id: str | None = None


@dataclass(frozen=True)
class Ack:
    """One acknowledgement of a batch: the action, the claim it was taken with, the result."""

    id: int
    claim: str
    status: str
    detail: dict[str, Any]


def record(row: Any, now: float, *, with_claim: bool = False) -> Delivery:
    state = State(row.state)
    return Delivery(
        id=row.id,
        idempotency_key=row.idempotency_key,
        tenant=row.tenant,
        run_id=row.run_id,
        approval_id=row.approval_id,
        subject_id=row.subject_id,
        kind=row.kind,
        route=row.route,
        payload=json.loads(row.payload),
        state=state,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        last_error=row.last_error,
        receipt=json.loads(row.receipt) if row.receipt else None,
        claim=row.claim_token if with_claim else None,
        claimed_by=row.claimed_by,
        claim_expires_at=row.due_at if state == State.CLAIMED else None,
        next_attempt_at=row.due_at if state in (State.READY, State.FAILED) else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class DeliveryRows:
    """Reads deliveries; the rows, records and audit events the store's changes share."""

    def __init__(
        self,
        engine: Engine,
        audit: TransactionalAuditLog,
        policy: Policy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.policy = policy or Policy()
        self.clock = clock
        self._skip_locked = engine.dialect.name == "postgresql"

    # -- reading ----------------------------------------------------------------------------

    def get(self, delivery_id: int, *, tenant: str | None = None) -> Delivery:
        """One delivery (404 `delivery.not_found` for another tenant's id)."""
        with readonly(self.engine.connect()) as conn:
            return record(self._row(conn, delivery_id, tenant), self.clock())

    def of_approval(self, approval_id: str) -> Delivery | None:
        """The delivery of an approved action, if it was opened."""
        q = select(deliveries).where(deliveries.c.approval_id == approval_id)
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(q.order_by(deliveries.c.id.desc()).limit(1)).first()
        return record(row, self.clock()) if row is not None else None

    def of_run(self, run_id: str) -> list[Delivery]:
        """A run's deliveries, oldest first (the run timeline shows them)."""
        q = select(deliveries).where(deliveries.c.run_id == run_id).order_by(deliveries.c.id)
        with readonly(self.engine.connect()) as conn:
            now = self.clock()
            return [record(r, now) for r in conn.execute(q)]

    def page(
        self,
        tenant: str,
        *,
        states: Iterable[str] = (),
        kind: str | None = None,
        subject_id: str | None = None,
        after: int | None = None,
        limit: int = 50,
        newest_first: bool = False,
    ) -> list[Delivery]:
        """A page by id, oldest first (the feed's cursor order) or newest first, claiming nothing."""
        q = self._filtered(select(deliveries), tenant, kind, subject_id, after)
        wanted = list(states)
        if wanted:
            q = q.where(deliveries.c.state.in_(wanted))
        with readonly(self.engine.connect()) as conn:
            now = self.clock()
            order = deliveries.c.id.desc() if newest_first else deliveries.c.id
            return [record(r, now) for r in conn.execute(q.order_by(order).limit(limit))]

    def failures(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Failed attempts per (kind, route): deliveries now failed or dead, and their attempts."""
        q = (
            select(
                deliveries.c.kind,
                deliveries.c.route,
                deliveries.c.state,
                func.count().label("n"),
            )
            .where(deliveries.c.state.in_([State.FAILED.value, State.DEAD.value]))
            .group_by(deliveries.c.kind, deliveries.c.route, deliveries.c.state)
        )
        if tenant is not None:
            q = q.where(deliveries.c.tenant == tenant)
        counts: dict[tuple[str, str], dict[str, Any]] = {}
        with readonly(self.engine.connect()) as conn:
            for row in conn.execute(q):
                entry = counts.setdefault(
                    (row.kind, row.route),
                    {"kind": row.kind, "route": row.route, "failed": 0, "dead": 0},
                )
                entry[row.state] = int(row.n)
        return [counts[k] for k in sorted(counts)]

    def due_push(self, limit: int = 100) -> list[int]:
        """Ids of push deliveries (not the outbox) that are claimable now: the sweeper's work."""
        q = (
            select(deliveries.c.id)
            .where(deliveries.c.route != OUTBOX)
            .where(deliveries.c.state.in_(CLAIMABLE))
            .where(deliveries.c.due_at <= self.clock())
            .order_by(deliveries.c.due_at)
            .limit(limit)
        )
        with readonly(self.engine.connect()) as conn:
            return [int(r.id) for r in conn.execute(q)]

    def _filtered(
        self, q: Any, tenant: str, kind: str | None, subject_id: str | None, after: int | None
    ) -> Any:
        q = q.where(deliveries.c.tenant == tenant)
        if kind is not None:
            q = q.where(deliveries.c.kind == kind)
        if subject_id is not None:
            q = q.where(deliveries.c.subject_id == subject_id)
        if after is not None:
            q = q.where(deliveries.c.id > after)
        return q

    def _row(
        self, conn: Connection, delivery_id: int, tenant: str | None, *, lock: bool = False
    ) -> Any:
        q = select(deliveries).where(deliveries.c.id == delivery_id)
        if tenant is not None:  # never lock (nor wait on) another tenant's row
            q = q.where(deliveries.c.tenant == tenant)
        if lock and self._skip_locked:
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise DeliveryNotFoundError(
                f"no action {delivery_id} in this tenant", action_id=delivery_id
            )
        return row

    def _event_of(
        self, row: Any, event_type: str, actor: Actor, data: dict[str, Any],
        personal: dict[str, Any] | None = None,
    ) -> AuditEvent:  # fmt: skip
        # Ids, states and counts only in `data` (it is never removable); what an app or a
        # person wrote (an ack's detail, a reason) is erasable `personal`.
        base = {"action_id": row.id, "approval_id": row.approval_id, "kind": row.kind,
                "route": row.route, "state": row.state}  # fmt: skip
        return AuditEvent(event_type=event_type, actor=actor, run_id=row.run_id,
                          subject_id=row.subject_id, data={**base, **data},
                          personal=personal or None)  # fmt: skip

    def _event(
        self, conn: Connection, row: Any, event_type: str, actor: Actor, data: dict[str, Any],
        *, personal: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        event = self._event_of(row, event_type, actor, data, personal)
        self.audit.append_in(conn, row.tenant, [event])


__all__ = ["MAX_ERROR", "Ack", "DeliveryRows", "NewDelivery", "Policy", "record"]
