"""Executors act once per idempotency key, store a receipt, and never act twice on retry."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from copilot.db.tables import outbox, receipts
from copilot.engine.executors import Action, ExecutionError, OutboxExecutor, WebhookExecutor

SECRET = b"webhook-secret"


class Receiver:
    """A real HTTP endpoint that checks signatures and answers scripted statuses."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.seen: list[dict[str, Any]] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-Copilot-Timestamp"]
                expected = (
                    "sha256="
                    + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                )
                me.seen.append(
                    {
                        "key": self.headers["Idempotency-Key"],
                        "body": json.loads(body),
                        "valid": hmac.compare_digest(expected, self.headers["X-Copilot-Signature"]),
                    }
                )
                self.send_response(me.statuses.pop(0) if me.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


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
