"""Push routes move the delivery with each attempt: failed (retried after a backoff), dead, retried."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from approvals import ApprovalRequest
from audit import Actor
from copilot.delivery import DeliveryStore, Policy, State
from copilot.engine.runs import RunState
from copilot.errors import TransientError
from copilot.runtime import Runtime
from tests.support.feed import events_of
from tests.support.receiver import SECRET, Receiver
from tests.support.runtime import build_runtime


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def rt(db_url: str, tmp_path: Path, receiver: Receiver) -> Iterator[Runtime]:
    runtime = build_runtime(
        db_url, tmp_path, woken=[], action_executors="email_customer=webhook",
        webhook_url=receiver.url, webhook_secret=SECRET.decode(),
    )  # fmt: skip
    runtime.deliveries = DeliveryStore(
        runtime.engine, runtime.audit, Policy(max_attempts=2, backoff_base=0.05, backoff_cap=0.1)
    )
    runtime.executors["webhook"].backoff = 0.01  # type: ignore[attr-defined]
    yield runtime
    runtime.close()


def approve_email(rt: Runtime) -> tuple[str, ApprovalRequest]:
    run, _ = rt.runner.trigger("proposing", "acct-1", tenant="acme", triggered_by="acme-app")
    assert rt.runner.run_inline(run.id).state == RunState.WAITING
    (email,) = [r for r in rt.gate.of_run(run.id) if r.status == "pending"]
    rt.gate.decide(email.id, reviewer="maya", roles={"reviewer"}, decision="approve",
                   payload_hash=email.payload_hash)  # fmt: skip
    return run.id, email


def advance_failing(rt: Runtime, run_id: str) -> None:
    with pytest.raises(TransientError):
        rt.runner.run_inline(run_id)
    rt.runner.requeue(run_id, "transient")


def test_a_failed_push_is_retried_by_the_run_after_its_backoff_then_delivered(
    rt: Runtime, receiver: Receiver
) -> None:
    run_id, email = approve_email(rt)
    receiver.statuses = [503, 503, 503]  # one attempt's worth of the executor's own tries
    advance_failing(rt, run_id)
    d = rt.deliveries.of_approval(email.id)
    assert d is not None and d.state == State.FAILED and d.attempts == 1
    assert d.last_error is not None and "HTTP 503" in d.last_error
    assert rt.gate.get(email.id).execution_status == "failed"
    time.sleep(0.06)  # the backoff
    assert rt.runner.run_inline(run_id).state == RunState.COMPLETED
    d = rt.deliveries.of_approval(email.id)
    assert d is not None and d.state == State.DELIVERED and d.attempts == 2
    assert d.receipt is not None and d.receipt["detail"]["http_status"] == 200
    assert rt.gate.get(email.id).execution_status == "done"  # closed once the receipt exists
    states = [
        e["state"] for t in ("ready", "claimed", "failed", "delivered")
        for e in events_of(rt, "acme", f"delivery.{t}") if e["kind"] == "email_customer"
    ]  # fmt: skip
    assert sorted(states) == sorted(["ready", "claimed", "claimed", "failed", "delivered"])


def test_a_dead_push_no_longer_holds_the_run_and_a_person_s_retry_is_delivered_by_the_sweeper(
    rt: Runtime, receiver: Receiver
) -> None:
    run_id, email = approve_email(rt)
    receiver.statuses = [503] * 6  # two attempts' worth: the cap
    advance_failing(rt, run_id)
    time.sleep(0.06)
    done = rt.runner.run_inline(run_id)
    assert done.state == RunState.COMPLETED  # a dead delivery does not hold the run
    d = rt.deliveries.of_approval(email.id)
    assert d is not None and d.state == State.DEAD and d.attempts == 2
    assert rt.gate.get(email.id).execution_status == "failed"
    assert rt.sweeper.sweep().redelivered == 0  # dead waits for a person
    assert rt.deliveries.failures() == [
        {"kind": "email_customer", "route": "webhook", "failed": 0, "dead": 1}
    ]
    rt.deliveries.retry("acme", d.id, actor=Actor.human("maya"))
    assert rt.sweeper.sweep().redelivered == 1
    d = rt.deliveries.of_approval(email.id)
    assert d is not None and d.state == State.DELIVERED
    assert rt.gate.get(email.id).execution_status == "done"
    keys = {s["key"] for s in receiver.seen}
    assert keys == {f"approval:{email.id}"}  # every attempt carried the same key
