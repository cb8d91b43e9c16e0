"""The delivery store on SQLite and PostgreSQL: claims, acks, backoff, dead letters, races."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import Actor
from copilot.delivery import (
    ClaimLostError,
    DeliveryConflictError,
    DeliveryStore,
    Policy,
    State,
)
from copilot.runtime import Runtime
from tests.support.feed import events_of, opened
from tests.support.runtime import build_runtime


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, woken=[], with_flows=False)
    yield runtime
    runtime.close()


def store_on(rt: Runtime, clock: Callable[[], float], **policy: Any) -> DeliveryStore:
    rt.deliveries = DeliveryStore(rt.engine, rt.audit, Policy(**policy), clock=clock)
    return rt.deliveries


def test_opening_twice_is_one_ready_delivery_with_one_event(rt: Runtime) -> None:
    (a,) = opened(rt, 1)
    (b,) = opened(rt, 1)
    assert a.id == b.id and a.state == State.READY and a.attempts == 0
    assert len(events_of(rt, "acme", "delivery.ready")) == 1


def test_an_unacked_claim_returns_to_the_feed_and_the_late_ack_is_refused(rt: Runtime) -> None:
    clock = Clock()
    store = store_on(rt, clock, visibility=30.0)
    opened(rt, 1)
    (first,) = store.claim("acme", "consumer-a")
    assert store.claim("acme", "consumer-b") == []  # held for 30 s
    clock.now += 31
    (second,) = store.claim("acme", "consumer-b")  # the claim timed out: back in the feed
    assert second.id == first.id and second.attempts == 2 and second.claim != first.claim
    assert first.claim is not None and second.claim is not None
    with pytest.raises(ClaimLostError):
        store.ack("acme", first.id, first.claim, "delivered", {})
    done = store.ack("acme", second.id, second.claim, "delivered", {"ok": 1})
    assert done.state == State.DELIVERED and done.receipt is not None
    assert done.claimed_by == "consumer-b"
    (claimed_again,) = [e for e in events_of(rt, "acme", "delivery.claimed") if e["attempt"] == 2]
    assert claimed_again["expired_claim_of"] == "consumer-a"


def test_failures_back_off_exponentially_up_to_the_cap_then_die(rt: Runtime) -> None:
    clock = Clock()
    store = store_on(rt, clock, max_attempts=4, backoff_base=2.0, backoff_cap=5.0)
    opened(rt, 1)
    waits = []
    for _ in range(4):
        (d,) = store.claim("acme", "c")
        assert d.claim is not None
        failed = store.ack("acme", d.id, d.claim, "failed", {"error": "smtp 451"})
        if failed.state == State.DEAD:
            break
        assert failed.next_attempt_at is not None
        waits.append(failed.next_attempt_at - clock.now)
        assert store.claim("acme", "c") == []  # not before the backoff ends
        clock.now = failed.next_attempt_at
    assert waits == [2.0, 4.0, 5.0]  # 2·2^(n-1), capped at 5
    assert failed.state == State.DEAD and failed.last_error == "smtp 451" and failed.attempts == 4
    clock.now += 10_000
    assert store.claim("acme", "c") == []  # dead stays out of the feed
    assert store.failures() == [{"kind": "post_note", "route": "outbox", "failed": 0, "dead": 1}]
    # a person retries it: ready again, attempts from zero, and audited as theirs
    back = store.retry("acme", failed.id, actor=Actor.human("maya"))
    assert back.state == State.READY and back.attempts == 0
    (retried,) = events_of(rt, "acme", "delivery.retried")
    assert retried["from"] == "dead" and retried["attempts_before"] == 4
    with pytest.raises(DeliveryConflictError):
        store.cancel("acme", store.claim("acme", "c")[0].id, actor=Actor.human("m"), reason="x")


def test_racing_acks_of_one_claim_settle_it_once(rt: Runtime) -> None:
    """Eight threads ack the same claim at once: all see `delivered`, one event is written."""
    opened(rt, 1)
    (d,) = rt.deliveries.claim("acme", "c")
    assert d.claim is not None
    barrier = threading.Barrier(8)
    results: list[str] = []

    def ack() -> None:
        barrier.wait()
        results.append(rt.deliveries.ack("acme", d.id, d.claim or "", "delivered", {}).state)

    threads = [threading.Thread(target=ack) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["delivered"] * 8
    assert len(events_of(rt, "acme", "delivery.delivered")) == 1


def test_racing_acks_of_an_old_and_a_new_claim_let_only_the_new_one_win(rt: Runtime) -> None:
    clock = Clock()
    store = store_on(rt, clock, visibility=1.0)
    opened(rt, 1)
    (old,) = store.claim("acme", "a")
    clock.now += 2
    (new,) = store.claim("acme", "b")
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def ack(name: str, claim: str) -> None:
        barrier.wait()
        try:
            outcome[name] = store.ack("acme", new.id, claim, "delivered", {}).state
        except ClaimLostError as exc:
            outcome[name] = exc.code

    threads = [threading.Thread(target=ack, args=(n, c.claim)) for n, c in (("a", old), ("b", new))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcome == {"a": "delivery.claim_lost", "b": "delivered"}


def test_racing_consumers_claim_each_action_exactly_once(rt: Runtime) -> None:
    """Six threads drain 60 actions: each is claimed and acked by exactly one of them."""
    opened(rt, 60)
    taken: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def consume(name: str) -> None:
        barrier.wait()
        while batch := rt.deliveries.claim("acme", name, limit=5):
            for d in batch:
                rt.deliveries.ack("acme", d.id, d.claim or "", "delivered", {"by": name})
                with lock:
                    taken[d.id] += 1

    threads = [threading.Thread(target=consume, args=(f"c{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 60 and set(taken.values()) == {1}
    assert len(events_of(rt, "acme", "delivery.delivered")) == 60
    assert len(events_of(rt, "acme", "delivery.claimed")) == 60
