"""An approval request as stored and served, and the hash a decision is bound to.

Light on purpose (pydantic only, no SQL): the HTTP client and the API schema import it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from approvals.kinds import Risk
from audit.canonical import canonical

Status = Literal["pending", "approved", "rejected", "expired", "cancelled", "superseded"]


def payload_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of the canonical payload: what a decision is bound to."""
    return hashlib.sha256(canonical(payload)).hexdigest()


class ApprovalRequest(BaseModel):
    """One version of a proposed action awaiting (or past) its decision."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str
    workflow: str
    run_id: str | None
    subject_id: str | None
    action_id: str
    version: int
    kind: str
    payload: dict[str, Any]
    payload_hash: str
    risk: Risk
    confidence: float
    level: str
    required_n: int
    role: str
    status: str
    policy_rule: str
    policy_version: str
    shadow: list[dict[str, Any]]
    explanation: dict[str, Any] | None
    triggered_by: str
    created_at: float
    updated_at: float
    deadline: float
    claimed_by: str | None
    claim_expires_at: float | None
    supersedes: str | None
    reason: str | None
    execution_status: str | None
    approvals: list[str] = []


__all__ = ["ApprovalRequest", "Status", "payload_hash"]
