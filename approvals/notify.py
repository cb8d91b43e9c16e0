"""Telling reviewers about new pending requests. `Notifier` is the protocol; webhook built in.

Notification is a courtesy, not a record: the queue in the database is the truth, so a
notifier that fails is logged and never fails the proposal.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Protocol

import httpx

from approvals.request import ApprovalRequest
from audit.canonical import canonical

log = logging.getLogger(__name__)


def sign_body(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Copilot-Signature` value: `sha256=` HMAC over `timestamp.body`."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


class Notifier(Protocol):
    """Tells someone a request waits for a person."""

    def notify(self, request: ApprovalRequest) -> None:
        """Best effort; must not raise."""
        ...


class WebhookNotifier:
    """POSTs a summary of the pending request (no payload: it may be personal), signed."""

    def __init__(self, url: str, secret: bytes, *, client: httpx.Client | None = None) -> None:
        self.url = url
        self.secret = secret
        self.client = client or httpx.Client(timeout=5.0)

    def notify(self, request: ApprovalRequest) -> None:
        """One attempt; failures are logged."""
        body = canonical({
            "approval_id": request.id, "kind": request.kind, "risk": request.risk.value,
            "required_n": request.required_n, "role": request.role, "deadline": request.deadline,
            "workflow": request.workflow, "run_id": request.run_id, "subject_id": request.subject_id,
            "tenant": request.tenant, "version": request.version,
        })  # fmt: skip
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Copilot-Timestamp": stamp,
                   "X-Copilot-Signature": sign_body(self.secret, stamp, body)}  # fmt: skip
        try:
            response = self.client.post(self.url, content=body, headers=headers)
            if not response.is_success:
                log.warning(
                    "notifier %s answered %s for %s", self.url, response.status_code, request.id
                )
        except httpx.HTTPError as exc:
            log.warning("notifier %s failed for %s: %s", self.url, request.id, exc)
