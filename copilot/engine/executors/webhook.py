"""The `webhook` executor: an HMAC-signed POST with an `Idempotency-Key` header, retried."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from approvals.notify import sign_body
from audit.canonical import canonical
from audit.db import readonly
from copilot.engine.executor import (
    Action,
    ExecutionError,
    Receipt,
    Route,
    stored_receipt,
    write_receipt,
)
from copilot.errors import ConfigError
from copilot.settings import Settings


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

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: Settings, *, route: Route | None = None
    ) -> WebhookExecutor:
        """The `copilot.executors` factory: `COPILOT_WEBHOOK_URL` and `COPILOT_WEBHOOK_SECRET`,
        or a route's own `url` and `secret_env` (each falls back to the setting)."""
        if route is not None:
            unknown = sorted(set(route.options) - {"url", "timeout"})
            if unknown:
                raise ConfigError(
                    f"unknown webhook option(s) {', '.join(unknown)}; use url, secret_env, timeout"
                )
        url = route.get("url") if route is not None else None
        secret = route.get("secret") if route is not None else None
        url = url or settings.webhook_url
        secret = secret or settings.webhook_secret
        if not url:
            raise ConfigError(
                "COPILOT_WEBHOOK_URL is unset; set it to the endpoint that receives the actions"
                + (" (or give the route `url:`)" if route is not None else "")
            )
        if not secret:
            # An empty HMAC key signs nothing a receiver could trust.
            raise ConfigError(
                "COPILOT_WEBHOOK_SECRET is unset; set it to the HMAC key the receiver "
                "checks X-Copilot-Signature with"
                + (" (or give the route `secret_env: VARIABLE`)" if route is not None else "")
            )
        timeout = float(route.get("timeout", 10.0)) if route is not None else 10.0
        return cls(engine, str(url), str(secret).encode(), client=httpx.Client(timeout=timeout))

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
                "subject_id": action.subject_id,
                "approval_id": action.approval_id,
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
                    return write_receipt(conn, action, self.name, status, detail)
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
