"""Executors act once per idempotency key, store a receipt, and never act twice on retry."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from copilot.db.tables import outbox, receipts
from copilot.engine.executor import Action, ExecutionError
from copilot.engine.executors import OutboxExecutor, WebhookExecutor
from tests.support.receiver import SECRET, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def action(key: str = "run-1:step:1") -> Action:
    return Action(
        tenant="acme",
        run_id="run-1",
        kind="email_customer",
        payload={"to": "acct-1", "text": "Hi"},
        idempotency_key=key,
    )


def test_outbox_acts_once_even_when_raced(engine: Engine) -> None:
    ex = OutboxExecutor(engine)
    receipts_seen = []
    threads = [
        threading.Thread(target=lambda: receipts_seen.append(ex.execute(action())))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(receipts_seen) == 8 and len({r.detail["outbox_id"] for r in receipts_seen}) == 1
    assert sum(not r.replayed for r in receipts_seen) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1


def test_webhook_signs_retries_server_errors_and_replays_the_receipt(
    engine: Engine, receiver: Receiver
) -> None:
    ex = WebhookExecutor(engine, receiver.url, SECRET, attempts=3, backoff=0.01)
    receiver.statuses = [500, 503, 200]
    first = ex.execute(action())
    assert first.status == "done" and first.detail["attempts"] == 3 and not first.replayed
    assert [s["key"] for s in receiver.seen] == ["run-1:step:1"] * 3
    assert all(s["valid"] for s in receiver.seen)
    again = ex.execute(action())
    assert again.replayed and len(receiver.seen) == 3  # no second delivery


def test_webhook_refusal_is_final_and_exhausted_retries_leave_no_receipt(
    engine: Engine, receiver: Receiver
) -> None:
    ex = WebhookExecutor(engine, receiver.url, SECRET, attempts=2, backoff=0.01)
    receiver.statuses = [422]
    assert ex.execute(action("k-refused")).status == "refused"
    receiver.statuses = [500, 500]
    with pytest.raises(ExecutionError, match="will be retried with the same Idempotency-Key"):
        ex.execute(action("k-down"))
    with engine.connect() as conn:
        keys = set(conn.execute(select(receipts.c.idempotency_key)).scalars())
    assert keys == {"k-refused"}
    receiver.statuses = [200]
    assert ex.execute(action("k-down")).status == "done"  # the retry delivers, same key
