"""The feed's hot statements: one claim statement per batch, one compare-and-set per ack.

PostgreSQL claims a batch in one `UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)`
that returns each row with what it was before (the state and holder the audit event
names) and a fresh claim token per row. SQLite has no row locks (its writers are
serialized by `BEGIN IMMEDIATE`), so the store compare-and-sets row by row there.

On PostgreSQL the ack of a delivered action is raw SQL run on the driver, as the audit
store's appends are: SQLAlchemy's per-statement machinery cost about as much CPU as
the database's work on this path (bench/actions.py), and the outbox's `delivered_at`
is set in the same statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, func, update

from copilot.db.tables import deliveries

d = deliveries.c


def claim_batch(picked: Any, owner: str, now: float, lease: float) -> Any:
    """PostgreSQL: claim every row of the `picked` subquery (ids locked SKIP LOCKED)."""
    sub = picked.subquery("picked")
    token = func.replace(cast(func.gen_random_uuid(), String), "-", "")
    return (
        update(deliveries)
        .where(d.id == sub.c.id)
        .values(state="claimed", claim_token=token, claimed_by=owner, attempts=d.attempts + 1,
                due_at=now + lease, updated_at=now)
        .returning(*deliveries.c, sub.c.state.label("was"), sub.c.claimed_by.label("was_by"))
    )  # fmt: skip


def ack_delivered(
    tenant: str, delivery_id: int, claim: str, receipt: str, now: float, outbox: str
) -> Any:
    """Compare-and-set a claimed row to `delivered` if `claim` still holds it; returns the row."""
    return (
        update(deliveries)
        .where(d.id == delivery_id, d.tenant == tenant, d.claim_token == claim)
        .where(d.state == "claimed", d.route == outbox)
        .values(state="delivered", due_at=None, receipt=receipt, updated_at=now)
        .returning(*deliveries.c)
    )


COLUMNS = ", ".join(c.name for c in deliveries.c)
PG_ACK_DELIVERED = f"""
WITH acked AS (
    UPDATE deliveries SET state = 'delivered', due_at = NULL, receipt = %(receipt)s,
                          updated_at = %(now)s
    WHERE id = %(id)s AND tenant = %(tenant)s AND claim_token = %(claim)s
      AND state = 'claimed' AND route = %(outbox)s
    RETURNING {COLUMNS}
), marked AS (
    UPDATE outbox SET delivered_at = %(now)s FROM acked
    WHERE outbox.idempotency_key = acked.idempotency_key
)
SELECT {COLUMNS} FROM acked
"""

# A batch of deliveries acked in one statement. Every row the batch names (in the caller's
# tenant; `lock`: the delivered and the failed acks alike) is locked first, in id order, so two batches never wait on each other in a
# circle and the acks the statement does not settle (replays, failures) are handled
# afterwards without another wait; a row is settled only if its own claim still holds.
PG_ACK_MANY = f"""
WITH given AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(claims)s::text[], %(receipts)s::text[])
        AS g(id, claim, receipt)
), locked AS (
    SELECT d.id FROM deliveries d WHERE d.id = ANY(%(lock)s::bigint[]) AND d.tenant = %(tenant)s
    ORDER BY d.id FOR UPDATE
), acked AS (
    UPDATE deliveries SET state = 'delivered', due_at = NULL, receipt = given.receipt,
                          updated_at = %(now)s
    FROM locked JOIN given ON given.id = locked.id
    WHERE deliveries.id = locked.id AND deliveries.claim_token = given.claim
      AND deliveries.state = 'claimed' AND deliveries.route = %(outbox)s
    RETURNING {", ".join("deliveries." + c.name for c in deliveries.c)}
), marked AS (
    UPDATE outbox SET delivered_at = %(now)s FROM acked
    WHERE outbox.idempotency_key = acked.idempotency_key
)
SELECT {COLUMNS} FROM acked
"""

# Taken first, in its own statement, so the locks hold whatever the next statement's plan
# reads (a join with nothing delivered in it need not read `locked` at all).
PG_LOCK_BATCH = """
SELECT id FROM deliveries WHERE id = ANY(%(lock)s::bigint[]) AND tenant = %(tenant)s
ORDER BY id FOR UPDATE
"""

__all__ = ["PG_ACK_DELIVERED", "PG_ACK_MANY", "PG_LOCK_BATCH", "ack_delivered", "claim_batch"]
