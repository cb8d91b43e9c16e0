"""Actions in the feed: approved through real runs, or opened straight in the delivery store."""

from __future__ import annotations

from typing import Any

from audit import Actor, Query
from copilot.delivery import Delivery, NewDelivery
from copilot.runtime import Runtime


def approved_run(rt: Runtime, tenant: str = "acme", subject: str = "acct-1") -> str:
    """A `proposing` run taken to its end: its note auto-approved, its email approved by a
    person, both handed to the outbox. Returns the run id."""
    run, _ = rt.runner.trigger("proposing", subject, tenant=tenant, triggered_by=f"{tenant}-app")
    rt.runner.run_inline(run.id)
    (pending,) = [r for r in rt.gate.of_run(run.id) if r.status == "pending"]
    rt.gate.decide(pending.id, reviewer="maya", roles={"reviewer"}, decision="approve",
                   payload_hash=pending.payload_hash, tenant=tenant)  # fmt: skip
    rt.runner.run_inline(run.id)
    return run.id


def opened(rt: Runtime, n: int, *, tenant: str = "acme", prefix: str = "t") -> list[Delivery]:
    """`n` outbox actions opened `ready` in the real store (no run: the feed's tests)."""
    made = []
    for i in range(n):
        new = NewDelivery(idempotency_key=f"{prefix}:{i}", tenant=tenant, kind="post_note",
                          route="outbox", payload={"i": i}, subject_id=f"acct-{i % 3}")  # fmt: skip
        made.append(rt.deliveries.open(new))
    return made


def events_of(rt: Runtime, tenant: str, event_type: str) -> list[dict[str, Any]]:
    """The data of every audit event of that type in the tenant's trail."""
    rt.audit.settle(tenant)
    found, after = [], 0
    while True:
        page = rt.audit.query(tenant, Query(event_type=event_type, after_seq=after, limit=1000))
        found += [e.data for e in page]
        if len(page) < 1000:
            return found
        after = page[-1].seq


__all__ = ["Actor", "approved_run", "events_of", "opened"]
