"""The delivery store: every state change of an action's delivery commits with its audit event.

Claims are compare-and-set on (state, claim token) and, on PostgreSQL, taken with
`FOR UPDATE SKIP LOCKED`, so racing consumers never take the same action and never wait on
each other. A claim has a visibility timeout: past `due_at` an unacked claim is claimable
again (a consumer that died returns its actions to the feed), and the old holder's ack is
refused (`delivery.claim_lost`). An ack repeated by the claim that made it is a replay.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from audit import Actor, AuditEvent, TransactionalAuditLog
from audit.db import readonly
from copilot.db.tables import deliveries, outbox
from copilot.delivery._sql import PG_ACK_DELIVERED, ack_delivered, claim_batch
from copilot.delivery.errors import ClaimLostError, DeliveryConflictError, DeliveryNotFoundError
from copilot.delivery.model import CLAIMABLE, OUTBOX, Delivery, State, backoff

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


def _record(row: Any, now: float, *, with_claim: bool = False) -> Delivery:
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


class DeliveryStore:
    """Opens, claims, acknowledges, retries and cancels deliveries; each change is audited."""

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
            return _record(self._row(conn, delivery_id, tenant), self.clock())

    def of_approval(self, approval_id: str) -> Delivery | None:
        """The delivery of an approved action, if it was opened."""
        q = select(deliveries).where(deliveries.c.approval_id == approval_id)
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(q.order_by(deliveries.c.id.desc()).limit(1)).first()
        return _record(row, self.clock()) if row is not None else None

    def of_run(self, run_id: str) -> list[Delivery]:
        """A run's deliveries, oldest first (the run timeline shows them)."""
        q = select(deliveries).where(deliveries.c.run_id == run_id).order_by(deliveries.c.id)
        with readonly(self.engine.connect()) as conn:
            now = self.clock()
            return [_record(r, now) for r in conn.execute(q)]

    def page(
        self,
        tenant: str,
        *,
        states: Iterable[str] = (),
        kind: str | None = None,
        subject_id: str | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """A page by id, oldest first, without claiming anything."""
        q = self._filtered(select(deliveries), tenant, kind, subject_id, after)
        wanted = list(states)
        if wanted:
            q = q.where(deliveries.c.state.in_(wanted))
        with readonly(self.engine.connect()) as conn:
            now = self.clock()
            return [_record(r, now) for r in conn.execute(q.order_by(deliveries.c.id).limit(limit))]

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

    # -- opening ----------------------------------------------------------------------------

    def open(self, new: NewDelivery) -> Delivery:
        """The delivery for `new.idempotency_key`, created `ready` (with its event) if absent."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                q = select(deliveries).where(deliveries.c.idempotency_key == new.idempotency_key)
                row = conn.execute(q).first()
                if row is not None:
                    return _record(row, now)
                values = {
                    "idempotency_key": new.idempotency_key,
                    "tenant": new.tenant,
                    "run_id": new.run_id,
                    "approval_id": new.approval_id,
                    "subject_id": new.subject_id,
                    "kind": new.kind,
                    "route": new.route,
                    "payload": json.dumps(new.payload, sort_keys=True),
                    "state": State.READY.value,
                    "attempts": 0,
                    "max_attempts": self.policy.max_attempts,
                    "due_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                pk = conn.execute(insert(deliveries).values(**values)).inserted_primary_key
                assert pk is not None
                row = self._row(conn, int(pk[0]), None)
                self._event(conn, row, "delivery.ready", Actor.system("delivery"), {})
                return _record(row, now)
        except IntegrityError:  # a concurrent open of the same key won the insert
            with readonly(self.engine.connect()) as conn:
                q = select(deliveries).where(deliveries.c.idempotency_key == new.idempotency_key)
                found = conn.execute(q).first()
            if found is None:
                raise
            return _record(found, now)

    # -- the feed: claim and ack -------------------------------------------------------------

    def claim(
        self,
        tenant: str,
        consumer: str,
        *,
        limit: int = 10,
        kind: str | None = None,
        subject_id: str | None = None,
        after: int | None = None,
        visibility: float | None = None,
        only: int | None = None,
    ) -> list[Delivery]:
        """Claim up to `limit` claimable outbox actions for `consumer` (`only`: that one id);
        each carries its claim token."""
        now = self.clock()
        lease = self.policy.visibility if visibility is None else visibility
        q = self._filtered(select(deliveries), tenant, kind, subject_id, after)
        if only is not None:
            q = q.where(deliveries.c.id == only)
        q = q.where(deliveries.c.route == OUTBOX, deliveries.c.state.in_(CLAIMABLE))
        q = q.where(deliveries.c.due_at <= now).order_by(deliveries.c.id).limit(limit)
        if self._skip_locked:
            q = q.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            if self._skip_locked:
                picked = q.with_only_columns(deliveries.c.id, deliveries.c.state,
                                             deliveries.c.claimed_by)  # fmt: skip
                rows = list(conn.execute(claim_batch(picked, consumer[:200], now, lease)))
                rows.sort(key=lambda r: r.id)
                self._claimed_events(conn, rows, consumer)
                return [_record(r, now, with_claim=True) for r in rows]
            taken = (self._take(conn, row, consumer, now, lease) for row in conn.execute(q).all())
            return [_record(t, now, with_claim=True) for t in taken if t is not None]

    def ack(
        self, tenant: str, delivery_id: int, claim: str, status: str, detail: dict[str, Any]
    ) -> Delivery:
        """Settle a claim: `delivered` (the receipt) or `failed` (retried, or dead at the cap).

        Repeating the ack that settled the action returns it unchanged (a replay); an ack by
        a claim that is not the action's current one is `delivery.claim_lost`.
        """
        if status not in (State.DELIVERED.value, State.FAILED.value):
            raise DeliveryConflictError(
                f"ack status {status!r}: use delivered or failed", status=status
            )
        now = self.clock()
        with self.engine.begin() as conn:
            if status == State.DELIVERED.value:  # the common case: one compare-and-set
                receipt = json.dumps({"detail": detail, "at": now}, sort_keys=True)
                done = self._ack_delivered(conn, tenant, delivery_id, claim, receipt, now)
                if done is not None:
                    return _record(done, now, with_claim=True)
            row = self._row(conn, delivery_id, tenant, lock=True)
            if row.claim_token != claim or row.route != OUTBOX:
                raise ClaimLostError(
                    f"action {delivery_id}: this claim is not its current one (it expired and "
                    "another consumer claimed the action, or it was never claimed with it); "
                    "drop your copy, the current holder delivers it",
                    action_id=delivery_id,
                )
            if row.state != State.CLAIMED.value:
                return self._replay(row, status, now)
            actor = Actor.system(row.claimed_by or "consumer")
            return _record(self._settle(conn, row, status, detail, now, actor), now)

    # -- push routes: the engine's attempts ---------------------------------------------------

    def start(self, delivery_id: int, owner: str, *, take_over: bool = False) -> Delivery:
        """Claim a due push delivery for one attempt by `owner` (the engine or the sweeper).

        Returns it with `claim` set when this call claimed it; otherwise as it stands
        (settled, held by another attempt, or waiting out its backoff). `take_over` also
        takes a claimed one before its lease ends: the run's own retry does, since the run's
        lease means the attempt that claimed it (a worker that died mid-push) is gone.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._row(conn, delivery_id, None, lock=True)
            due = row.due_at is not None and row.due_at <= now
            held = take_over and row.state == State.CLAIMED.value
            if row.state not in CLAIMABLE or not (due or held):
                return _record(row, now)
            got = self._take(conn, row, owner, now, self.policy.push_lease)
            assert got is not None  # the row is locked: nobody moved it since it was read
            return _record(got, now, with_claim=True)

    def finish(
        self,
        delivery_id: int,
        claim: str,
        *,
        receipt: dict[str, Any] | None = None,
        error: str | None = None,
        final: bool = False,
    ) -> Delivery:
        """Record an attempt's result: `receipt` delivers; `error` fails it, `final` kills it."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._row(conn, delivery_id, None, lock=True)
            if row.claim_token != claim or row.state != State.CLAIMED.value:
                return _record(row, now)  # another attempt took over; its result stands
            actor = Actor.system(row.claimed_by or "engine")
            if receipt is not None:
                row = self._settle(conn, row, "delivered", receipt, now, actor)
            else:
                detail = {"error": error or "failed"}
                row = self._settle(conn, row, "failed", detail, now, actor, final=final)
            return _record(row, now)

    # -- people: retry and cancel ------------------------------------------------------------

    def retry(self, tenant: str, delivery_id: int, *, actor: Actor) -> Delivery:
        """Put a dead (or failed) delivery back to `ready`, attempts from zero."""
        return self._person(tenant, delivery_id, actor, State.READY, ("dead", "failed"))

    def cancel(self, tenant: str, delivery_id: int, *, actor: Actor, reason: str) -> Delivery:
        """Give up on a delivery that is not delivered nor in flight: `cancelled`, for good."""
        return self._person(
            tenant, delivery_id, actor, State.CANCELLED, ("dead", "failed", "ready"), reason
        )

    # -- helpers ----------------------------------------------------------------------------

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
        if lock and self._skip_locked:
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None or (tenant is not None and row.tenant != tenant):
            raise DeliveryNotFoundError(
                f"no action {delivery_id} in this tenant", action_id=delivery_id
            )
        return row

    def _take(self, conn: Connection, row: Any, owner: str, now: float, lease: float) -> Any:
        """Compare-and-set one claimable row to `claimed` by `owner`; None if it moved."""
        token = secrets.token_hex(16)
        held = deliveries.c.claim_token
        cas = (
            update(deliveries)
            .where(deliveries.c.id == row.id, deliveries.c.state == row.state)
            .where(held.is_(None) if row.claim_token is None else held == row.claim_token)
            .values(state=State.CLAIMED.value, claim_token=token, claimed_by=owner[:200],
                    attempts=row.attempts + 1, due_at=now + lease, updated_at=now)
        )  # fmt: skip
        if conn.execute(cas).rowcount != 1:
            return None
        taken = self._row(conn, row.id, None)
        data = {"attempt": taken.attempts}
        if row.state == State.CLAIMED.value:
            data["expired_claim_of"] = row.claimed_by  # the holder died or was too slow
        self._event(conn, taken, "delivery.claimed", Actor.system(owner[:200]), data)
        return taken

    def _settle(
        self, conn: Connection, row: Any, status: str, detail: dict[str, Any], now: float,
        actor: Actor, *, final: bool = False,
    ) -> Any:  # fmt: skip
        if status == State.DELIVERED.value:
            receipt = json.dumps({"detail": detail, "at": now}, sort_keys=True)
            values: dict[str, Any] = {"state": "delivered", "due_at": None, "receipt": receipt}
        else:
            dead = final or row.attempts >= row.max_attempts
            wait = backoff(row.attempts, base=self.policy.backoff_base, cap=self.policy.backoff_cap)
            error = str(detail.get("error") or json.dumps(detail, sort_keys=True))[:MAX_ERROR]
            values = {"state": "dead" if dead else "failed", "last_error": error,
                      "due_at": None if dead else now + wait}  # fmt: skip
        settled = conn.execute(update(deliveries).where(deliveries.c.id == row.id)
                               .values(updated_at=now, **values)
                               .returning(*deliveries.c)).one()  # fmt: skip
        if settled.state == State.DELIVERED.value:
            self._delivered(conn, settled, detail, now, actor)
        else:
            self._event(conn, settled, f"delivery.{settled.state}", actor,
                        {"attempt": settled.attempts}, personal={"detail": detail})  # fmt: skip
        return settled

    def _ack_delivered(
        self, conn: Connection, tenant: str, delivery_id: int, claim: str, receipt: str,
        now: float,
    ) -> Any:  # fmt: skip
        """The row, delivered now with its event, if `claim` held it; else None."""
        detail = json.loads(receipt)["detail"]
        if self._skip_locked:
            params = {"id": delivery_id, "tenant": tenant, "claim": claim, "receipt": receipt,
                      "now": now, "outbox": OUTBOX}  # fmt: skip
            done = conn.exec_driver_sql(PG_ACK_DELIVERED, params).first()
            if done is not None:
                self._event(conn, done, "delivery.delivered",
                            Actor.system(done.claimed_by or "consumer"),
                            {"attempt": done.attempts}, personal={"detail": detail})  # fmt: skip
            return done
        done = conn.execute(ack_delivered(tenant, delivery_id, claim, receipt, now, OUTBOX)).first()
        if done is not None:
            self._delivered(conn, done, detail, now)
        return done

    def _delivered(
        self, conn: Connection, row: Any, detail: dict[str, Any], now: float,
        actor: Actor | None = None,
    ) -> None:  # fmt: skip
        if row.route == OUTBOX:  # the old column stays true for readers of `outbox`
            conn.execute(update(outbox).where(outbox.c.idempotency_key == row.idempotency_key)
                         .values(delivered_at=now))  # fmt: skip
        who = actor or Actor.system(row.claimed_by or "consumer")
        self._event(conn, row, "delivery.delivered", who, {"attempt": row.attempts},
                    personal={"detail": detail})  # fmt: skip

    def _claimed_events(self, conn: Connection, rows: Any, owner: str) -> None:
        """One audit call for a batch's `delivery.claimed` events."""
        events = []
        for r in rows:
            data = {"attempt": r.attempts}
            if r.was == State.CLAIMED.value:
                data["expired_claim_of"] = r.was_by  # the holder died or was too slow
            events.append(self._event_of(r, "delivery.claimed", Actor.system(owner[:200]), data))
        if events:
            self.audit.append_in(conn, rows[0].tenant, events)

    def _replay(self, row: Any, status: str, now: float) -> Delivery:
        same = row.state == status or (status == "failed" and row.state == State.DEAD.value)
        if not same:
            raise DeliveryConflictError(
                f"action {row.id} was acked {row.state} with this claim already; an ack "
                "cannot change it",
                action_id=row.id,
                state=row.state,
            )
        return _record(row, now, with_claim=True)

    def _person(
        self, tenant: str, delivery_id: int, actor: Actor, to: State, allowed: tuple[str, ...],
        reason: str | None = None,
    ) -> Delivery:  # fmt: skip
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._row(conn, delivery_id, tenant, lock=True)
            if row.state not in allowed:
                raise DeliveryConflictError(
                    f"action {delivery_id} is {row.state}; only a {' or '.join(allowed)} one "
                    f"can be {'retried' if to == State.READY else 'cancelled'}",
                    action_id=delivery_id,
                    state=row.state,
                )
            values: dict[str, Any] = {"state": to.value, "updated_at": now, "claim_token": None}
            values["due_at"] = now if to == State.READY else None
            if to == State.READY:
                values["attempts"] = 0
            conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(**values))
            moved = self._row(conn, row.id, None)
            event = "delivery.retried" if to == State.READY else "delivery.cancelled"
            data = {"from": row.state, "attempts_before": row.attempts}
            self._event(conn, moved, event, actor, data,
                        personal={"reason": reason} if reason else None)  # fmt: skip
            return _record(moved, now)

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


__all__ = ["DeliveryStore", "NewDelivery", "Policy"]
