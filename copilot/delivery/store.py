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
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from audit import Actor
from audit.db import readonly
from copilot.db.tables import deliveries, outbox
from copilot.delivery._sql import (
    PG_ACK_DELIVERED,
    PG_ACK_MANY,
    PG_LOCK_BATCH,
    ack_delivered,
    claim_batch,
)
from copilot.delivery.errors import (
    ClaimLostError,
    DeliveryConflictError,
    DeliveryError,
)
from copilot.delivery.model import CLAIMABLE, OUTBOX, Delivery, State, backoff
from copilot.delivery.rows import MAX_ERROR, Ack, DeliveryRows, NewDelivery, Policy, record


class DeliveryStore(DeliveryRows):
    """Opens, claims, acknowledges, retries and cancels deliveries; each change is audited."""

    # -- opening ----------------------------------------------------------------------------

    def open(self, new: NewDelivery) -> Delivery:
        """The delivery for `new.idempotency_key`, created `ready` (with its event) if absent."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                q = select(deliveries).where(deliveries.c.idempotency_key == new.idempotency_key)
                row = conn.execute(q).first()
                if row is not None:
                    return record(row, now)
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
                return record(row, now)
        except IntegrityError:  # a concurrent open of the same key won the insert
            with readonly(self.engine.connect()) as conn:
                q = select(deliveries).where(deliveries.c.idempotency_key == new.idempotency_key)
                found = conn.execute(q).first()
            if found is None:
                raise
            return record(found, now)

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
                return [record(r, now, with_claim=True) for r in rows]
            taken = (self._take(conn, row, consumer, now, lease) for row in conn.execute(q).all())
            return [record(t, now, with_claim=True) for t in taken if t is not None]

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
                    return record(done, now, with_claim=True)
            return self._ack_slow(conn, tenant, delivery_id, claim, status, detail, now)

    def ack_many(self, tenant: str, acks: Sequence[Ack]) -> list[Delivery | DeliveryError]:
        """Settle many claims in one transaction, each as `ack` would, each on its own.

        The delivered ones whose claims hold are settled by one statement and their events
        appended in one call; every other ack (failed, a replay, a lost claim, an unknown
        id) takes `ack`'s path. The result per ack, in order: the action, or the error `ack`
        would have raised for it (nothing is written for that one).
        """
        now = self.clock()
        for a in acks:
            if a.status not in (State.DELIVERED.value, State.FAILED.value):
                raise DeliveryConflictError(
                    f"ack status {a.status!r}: use delivered or failed", status=a.status
                )
        with self.engine.begin() as conn:
            done = self._ack_delivered_many(conn, tenant, acks, now)
            out: list[Delivery | DeliveryError] = []
            for a in acks:
                row = done.pop((a.id, a.claim), None) if a.status == "delivered" else None
                if row is not None:
                    out.append(record(row, now, with_claim=True))
                    continue
                try:
                    out.append(self._ack_slow(conn, tenant, a.id, a.claim, a.status,
                                              a.detail, now))  # fmt: skip
                except DeliveryError as e:  # raised before anything was written for it
                    out.append(e)
            return out

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
                return record(row, now)
            got = self._take(conn, row, owner, now, self.policy.push_lease)
            assert got is not None  # the row is locked: nobody moved it since it was read
            return record(got, now, with_claim=True)

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
                return record(row, now)  # another attempt took over; its result stands
            actor = Actor.system(row.claimed_by or "engine")
            if receipt is not None:
                row = self._settle(conn, row, "delivered", receipt, now, actor)
            else:
                detail = {"error": error or "failed"}
                row = self._settle(conn, row, "failed", detail, now, actor, final=final)
            return record(row, now)

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

    def _ack_slow(
        self, conn: Connection, tenant: str, delivery_id: int, claim: str, status: str,
        detail: dict[str, Any], now: float,
    ) -> Delivery:  # fmt: skip
        """An ack that is not a delivered compare-and-set: failed, a replay, or refused."""
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
        return record(self._settle(conn, row, status, detail, now, actor), now)

    def _ack_delivered_many(
        self, conn: Connection, tenant: str, acks: Sequence[Ack], now: float
    ) -> dict[tuple[int, str], Any]:
        """The delivered acks whose claims hold, settled with their events, by (id, claim)."""
        wanted = {(a.id, a.claim): a for a in acks if a.status == State.DELIVERED.value}
        if not self._skip_locked:  # SQLite: writers are serialized; one by one is as cheap
            done: dict[tuple[int, str], Any] = {}
            for (i, claim), a in wanted.items():
                receipt = json.dumps({"detail": a.detail, "at": now}, sort_keys=True)
                row = conn.execute(ack_delivered(tenant, i, claim, receipt, now, OUTBOX)).first()
                if row is not None:
                    self._delivered(conn, row, a.detail, now)
                    done[(i, claim)] = row
            return done
        # Every row the batch names is locked first, in id order, failed acks' rows included:
        # two batches naming the same actions in other orders or roles never wait in a circle.
        lock = sorted({a.id for a in acks})
        conn.exec_driver_sql(PG_LOCK_BATCH, {"lock": lock, "tenant": tenant}).all()
        if not wanted:
            return {}
        items = list(wanted.values())
        params = {"lock": lock,
                  "ids": [a.id for a in items], "claims": [a.claim for a in items],
                  "receipts": [json.dumps({"detail": a.detail, "at": now}, sort_keys=True)
                               for a in items],
                  "tenant": tenant, "now": now, "outbox": OUTBOX}  # fmt: skip
        rows = sorted(conn.exec_driver_sql(PG_ACK_MANY, params).all(), key=lambda r: r.id)
        events = [self._event_of(r, "delivery.delivered", Actor.system(r.claimed_by or "consumer"),
                                 {"attempt": r.attempts},
                                 personal={"detail": wanted[(r.id, r.claim_token)].detail})
                  for r in rows]  # fmt: skip
        if events:
            self.audit.append_in(conn, tenant, events)
        return {(r.id, r.claim_token): r for r in rows}

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
        return record(row, now, with_claim=True)

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
            return record(moved, now)



__all__ = ["Ack", "DeliveryStore", "NewDelivery", "Policy"]  # the store's names, one import
