"""Batch acks (`DeliveryStore.ack_many`) on SQLite and PostgreSQL: each ack as `ack` would
settle it, on its own, in one transaction; racing batches settle each action once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from copilot.delivery import (
    ClaimLostError,
    Delivery,
    DeliveryConflictError,
    DeliveryError,
    DeliveryNotFoundError,
    DeliveryStore,
    Policy,
    State,
)
from copilot.delivery.store import Ack
from copilot.runtime import Runtime
from tests.support.feed import events_of, opened
from tests.support.runtime import build_runtime


@pytest.fixture
def rt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, woken=[], with_flows=False)
    yield runtime
    runtime.close()


def ok(result: Delivery | DeliveryError) -> Delivery:
    assert isinstance(result, Delivery), result
    return result


def test_each_ack_of_a_batch_settles_as_its_own_ack_would(rt: Runtime) -> None:
    store = rt.deliveries
    made = opened(rt, 5)
    opened(rt, 1, tenant="globex", prefix="g")
    (theirs,) = store.claim("globex", "other")
    a, b, c, d = store.claim("acme", "crm", limit=4)
    store.ack("acme", d.id, d.claim or "", "delivered", {"n": 0})  # settled before the batch
    # When one batch acks: two delivered, one failed, a replay, a never-claimed one,
    # another tenant's action and an unknown id
    results = store.ack_many("acme", [
        Ack(a.id, a.claim or "", "delivered", {"n": 1}),
        Ack(b.id, b.claim or "", "delivered", {"n": 2}),
        Ack(c.id, c.claim or "", "failed", {"error": "smtp 451"}),
        Ack(d.id, d.claim or "", "delivered", {"n": 0}),
        Ack(made[4].id, "0" * 32, "delivered", {}),
        Ack(theirs.id, theirs.claim or "", "delivered", {}),
        Ack(10**9, "0" * 32, "delivered", {}),
    ])  # fmt: skip
    # Then each result is what `ack` gives for it, in order
    assert [ok(r).state for r in results[:4]] == ["delivered", "delivered", "failed", "delivered"]
    assert ok(results[0]).receipt == {"detail": {"n": 1}, "at": ok(results[0]).updated_at}
    assert ok(results[2]).last_error == "smtp 451" and ok(results[2]).next_attempt_at
    assert isinstance(results[4], ClaimLostError)
    assert isinstance(results[5], DeliveryNotFoundError)  # another tenant's: not found
    assert isinstance(results[6], DeliveryNotFoundError)
    # and the refused ones changed nothing; one event per change, none for the replay
    assert store.get(made[4].id).state == State.READY
    assert store.get(theirs.id).state == State.CLAIMED
    delivered = events_of(rt, "acme", "delivery.delivered")
    assert sorted(int(e["action_id"]) for e in delivered) == sorted([a.id, b.id, d.id])
    assert [int(e["action_id"]) for e in events_of(rt, "acme", "delivery.failed")] == [c.id]
    assert events_of(rt, "globex", "delivery.delivered") == []


def test_a_batch_ack_that_would_change_a_settled_action_is_its_conflict(rt: Runtime) -> None:
    opened(rt, 1)
    (a,) = rt.deliveries.claim("acme", "crm")
    rt.deliveries.ack_many("acme", [Ack(a.id, a.claim or "", "delivered", {})])
    (again,) = rt.deliveries.ack_many("acme", [Ack(a.id, a.claim or "", "failed", {})])
    assert isinstance(again, DeliveryConflictError)
    with pytest.raises(DeliveryConflictError):  # a status that is not one refuses the batch
        rt.deliveries.ack_many("acme", [Ack(a.id, a.claim or "", "done", {})])


def test_a_late_batch_is_refused_for_the_actions_another_consumer_reclaimed(rt: Runtime) -> None:
    now = [time.time() + 1]
    store = DeliveryStore(rt.engine, rt.audit, Policy(visibility=1.0), clock=lambda: now[0])
    opened(rt, 3)
    old = store.claim("acme", "a", limit=3)
    now[0] += 2  # the first consumer's claims expire; the second takes two of them
    new = store.claim("acme", "b", limit=2)
    assert len(old) == 3 and len(new) == 2
    late = store.ack_many("acme", [Ack(d.id, d.claim or "", "delivered", {}) for d in old])
    assert [type(r).__name__ for r in late[:2]] == ["ClaimLostError"] * 2
    assert ok(late[2]).state == "delivered"  # its claim expired, but nobody took it: it holds
    fresh = store.ack_many("acme", [Ack(d.id, d.claim or "", "delivered", {}) for d in new])
    assert [ok(r).state for r in fresh] == ["delivered", "delivered"]


def test_racing_batches_settle_each_action_once(rt: Runtime) -> None:
    """Six threads ack the same batch of 20 at once, in different orders: all see every
    action delivered, and each has one `delivery.delivered` event."""
    opened(rt, 20)
    batch = rt.deliveries.claim("acme", "crm", limit=20)
    acks = [Ack(d.id, d.claim or "", "delivered", {}) for d in batch]
    barrier = threading.Barrier(6)
    seen: list[list[str]] = []

    def ack(i: int) -> None:
        mine = acks[i:] + acks[:i]  # each thread in its own order: no lock cycle may hang
        barrier.wait()
        seen.append([ok(r).state for r in rt.deliveries.ack_many("acme", mine)])

    threads = [threading.Thread(target=ack, args=(i * 3,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert seen == [["delivered"] * 20] * 6
    delivered = [int(e["action_id"]) for e in events_of(rt, "acme", "delivery.delivered")]
    assert sorted(delivered) == sorted(d.id for d in batch)


def test_batches_naming_the_same_actions_in_crossed_roles_do_not_deadlock(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[x delivered, y failed] against [y delivered, x failed]: every row a batch names is
    locked in id order before anything else, so one waits for the other and neither dies."""
    opened(rt, 2)
    x, y = rt.deliveries.claim("acme", "crm", limit=2)
    slow = DeliveryStore._ack_slow

    def widened(self: DeliveryStore, *args: Any, **kw: Any) -> Delivery:
        time.sleep(0.3)  # between the batch's statement and a failed ack's own row
        return slow(self, *args, **kw)

    monkeypatch.setattr(DeliveryStore, "_ack_slow", widened)
    crossed = ([Ack(x.id, x.claim or "", "delivered", {}), Ack(y.id, y.claim or "", "failed", {})],
               [Ack(y.id, y.claim or "", "delivered", {}), Ack(x.id, x.claim or "", "failed", {})])  # fmt: skip
    errors: list[BaseException] = []

    def run(batch: list[Ack]) -> None:
        try:
            rt.deliveries.ack_many("acme", batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in crossed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert {rt.deliveries.get(d.id).state for d in (x, y)} <= {"delivered", "failed"}
