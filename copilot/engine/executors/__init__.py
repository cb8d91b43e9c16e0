"""Executors carry out actions, each exactly once per idempotency key, with a stored receipt.

Built in: `OutboxExecutor` (a row in the `outbox` table, for the app to pick up) and
`WebhookExecutor` (an HMAC-signed POST with an `Idempotency-Key` header, retried).
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from approvals.notify import sign_body
from audit.canonical import canonical
from audit.db import readonly
from copilot.db.tables import outbox, receipts
from copilot.errors import RunError


class ExecutionError(RunError):
    """An action could not be carried out; no receipt was stored, so a retry is safe."""

    code = "action.execution_failed"


class Action(BaseModel):
    """An action to carry out, with the idempotency key that makes it happen once."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    run_id: str | None
    kind: str
    payload: dict[str, Any]
    idempotency_key: str


class Receipt(BaseModel):
    """Proof that an action was carried out (or definitively refused)."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    executor: str
    status: str  # "done" | "refused"
    detail: dict[str, Any]
    replayed: bool = False


class Executor(Protocol):
    """Carries out an action; a second call with the same key returns the first receipt."""

    name: str

    def execute(self, action: Action) -> Receipt:
        """Act once, or replay the stored receipt."""
        ...


def stored_receipt(conn: Connection, key: str) -> Receipt | None:
    """The receipt already written for `key`, if any."""
    row = conn.execute(select(receipts).where(receipts.c.idempotency_key == key)).first()
    if row is None:
        return None
    return Receipt(
        idempotency_key=key,
        executor=row.executor,
        status=row.status,
        detail=json.loads(row.detail),
        replayed=True,
    )


def _write_receipt(
    conn: Connection, action: Action, executor: str, status: str, detail: dict[str, Any]
) -> Receipt:
    conn.execute(
        insert(receipts).values(
            idempotency_key=action.idempotency_key,
            executor=executor,
            tenant=action.tenant,
            run_id=action.run_id,
            kind=action.kind,
            status=status,
            detail=json.dumps(detail, sort_keys=True),
            created_at=time.time(),
        )
    )
    return Receipt(
        idempotency_key=action.idempotency_key, executor=executor, status=status, detail=detail
    )


class OutboxExecutor:
    """Writes the action to the `outbox` table and its receipt in one transaction."""

    name = "outbox"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def execute(self, action: Action) -> Receipt:
        """Insert once; a redelivered action finds the receipt and does nothing."""
        try:
            with self.engine.begin() as conn:
                found = stored_receipt(conn, action.idempotency_key)
                if found is not None:
                    return found
                result = conn.execute(
                    insert(outbox).values(
                        tenant=action.tenant,
                        run_id=action.run_id,
                        idempotency_key=action.idempotency_key,
                        kind=action.kind,
                        payload=json.dumps(action.payload, sort_keys=True),
                        created_at=time.time(),
                    )
                )
                pk = result.inserted_primary_key
                return _write_receipt(
                    conn, action, self.name, "done", {"outbox_id": pk[0] if pk else None}
                )
        except IntegrityError:  # a concurrent execution of the same key won the insert
            with readonly(self.engine.connect()) as conn:
                found = stored_receipt(conn, action.idempotency_key)
            if found is None:
                raise
            return found


class WebhookExecutor:
    """POSTs the action as canonical JSON, signed, with the idempotency key as a header.

    2xx stores a `done` receipt; 4xx a `refused` one (the receiver said no: retrying would
    not help), except 408 and 429; those, 5xx, timeouts and connection errors are retried
    with backoff, then raise
    `ExecutionError` without a receipt, so a later retry sends the same key again and the
    receiver can deduplicate.
    """

    name = "webhook"

    def __init__(
        self,
        engine: Engine,
        url: str,
        secret: bytes,
        *,
        attempts: int = 3,
        backoff: float = 0.2,
        client: httpx.Client | None = None,
    ) -> None:
        self.engine = engine
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.backoff = backoff
        self.client = client or httpx.Client(timeout=10.0)

    def execute(self, action: Action) -> Receipt:
        """Deliver once, or replay the stored receipt."""
        with readonly(self.engine.connect()) as conn:
            found = stored_receipt(conn, action.idempotency_key)
        if found is not None:
            return found
        body = canonical(
            {
                "kind": action.kind,
                "payload": action.payload,
                "run_id": action.run_id,
                "tenant": action.tenant,
            }
        )
        last = "no attempt"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": action.idempotency_key,
                "X-Copilot-Timestamp": stamp,
                "X-Copilot-Signature": sign_body(self.secret, stamp, body),
            }
            try:
                response = self.client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500 or response.status_code in (408, 429):
                last = f"HTTP {response.status_code}"  # busy or down: worth another try
                continue
            status = "done" if response.is_success else "refused"
            detail = {"http_status": response.status_code, "attempts": attempt + 1}
            try:
                with self.engine.begin() as conn:
                    return _write_receipt(conn, action, self.name, status, detail)
            except IntegrityError:
                with readonly(self.engine.connect()) as conn:
                    done = stored_receipt(conn, action.idempotency_key)
                assert done is not None
                return done
        raise ExecutionError(
            f"webhook {self.url} failed after {self.attempts} attempts ({last}); the action "
            "was not recorded as done and will be retried with the same Idempotency-Key",
            idempotency_key=action.idempotency_key,
        )
