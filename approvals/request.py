"""An approval request: the record and the JSON document stored beside its row (no SQL here:
the HTTP client imports it; `approvals.rows` reads and writes the rows).

A request is bound to its action id and the SHA-256 of its canonical payload
(`payload_hash`). Its row holds the columns; its stored document (`approval_requests.doc`)
is exactly what the API serves for it, rewritten with every change the gate makes so
the queue's hot read joins documents instead of building records (see approvals.queue).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from approvals.errors import (
    ApprovalConflictError,
    ApprovalForbiddenError,
    ClaimedError,
    SeparationOfDutiesError,
)
from approvals.kinds import Risk
from approvals.policy import Evaluation, Facts
from audit import Actor, AuditEvent, Versions
from audit.canonical import canonical

Status = Literal["pending", "approved", "rejected", "expired", "cancelled", "superseded"]
PENDING = "pending"
SETTLED = frozenset({"approved", "rejected", "expired", "cancelled"})


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
    principal: str | None = None
    created_at: float
    updated_at: float
    deadline: float
    claimed_by: str | None
    claim_expires_at: float | None
    supersedes: str | None
    reason: str | None
    execution_status: str | None
    approvals: list[str] = []


_COLUMN_FIELDS = [f for f in ApprovalRequest.model_fields if f != "approvals"]


def from_columns(m: Mapping[Any, Any], approvals: list[str] | None = None) -> ApprovalRequest:
    """A request from its columns (a row's mapping, or the values about to be inserted)."""
    values: dict[str, Any] = {f: m.get(f) for f in _COLUMN_FIELDS}
    values["payload"] = json.loads(values["payload"])
    values["shadow"] = json.loads(values["shadow"])
    values["explanation"] = json.loads(values["explanation"]) if values["explanation"] else None
    return ApprovalRequest(**values, approvals=approvals or [])


def document(req: ApprovalRequest) -> str:
    """The stored document of a request: exactly what the API serves for it."""
    return req.model_dump_json()


def stored_document(columns: Mapping[str, Any], approvals: list[str] | None = None) -> str:
    """The document the gate stores for a row with these column values (for bulk loaders)."""
    return document(from_columns(columns, approvals))


def new_row(
    evaluation: Evaluation,
    facts: Facts,
    *,
    now: float,
    deadline: float,
    explanation: dict[str, Any] | None,
    **fields: Any,
) -> dict[str, Any]:
    """The columns of a new request version of `facts`, placed by the policy's `evaluation`.

    `fields` are the rest of its columns (tenant, workflow, run, subject, action, version,
    triggered_by).
    """
    outcome = evaluation.outcome
    status = {"auto_approve": "approved", "deny": "rejected", "require": PENDING}[outcome.action]
    return {
        **fields,
        "id": uuid.uuid4().hex,
        "kind": facts.kind,
        "payload": json.dumps(facts.payload, sort_keys=True),
        "payload_hash": payload_hash(facts.payload),
        "risk": facts.risk.value,
        "risk_rank": facts.risk.rank,
        "confidence": facts.confidence,
        "level": facts.level,
        "required_n": outcome.n,
        "role": outcome.role,
        "status": status,
        "policy_rule": evaluation.rule,
        "policy_version": evaluation.policy_version,
        "shadow": json.dumps(evaluation.shadow, sort_keys=True),
        "explanation": json.dumps(explanation, sort_keys=True) if explanation else None,
        "created_at": now,
        "updated_at": now,
        "deadline": deadline,
        "reason": f"policy rule {evaluation.rule}" if status != PENDING else None,
    }


def audit_event(
    req: ApprovalRequest,
    event_type: str,
    actor: Actor,
    data: dict[str, Any],
    personal: dict[str, Any] | None = None,
) -> AuditEvent:
    """The trail's record of something that happened to `req` (its ids and versions added)."""
    return AuditEvent(
        event_type=event_type,
        actor=actor,
        run_id=req.run_id,
        subject_id=req.subject_id,
        versions=Versions(workflow=req.workflow, policy=req.policy_version),
        data={"approval_id": req.id, "action_id": req.action_id, **data},
        personal=personal,
    )


def check_may_decide(
    req: ApprovalRequest,
    reviewer: str,
    roles: set[str] | frozenset[str],
    seen_hash: str,
    clock: Callable[[], float],
    principal: str | None = None,
) -> None:
    """Refuse a decision on anything but the pending version the reviewer saw, by someone
    other than who caused the run, with the request's role, once, and not while another
    reviewer holds the claim.

    Who caused the run is its principal (`key:<id>` of the key that triggered it or
    ingested the signals that fired it; `schedule:<name>`), compared with the decider's
    `principal`; and, for callers without one (the CLI) and runs older than principals,
    the name that triggered it, compared with the reviewer's name.
    """
    if req.status != PENDING:
        raise ApprovalConflictError(
            f"approval {req.id} is already {req.status}; reload the queue",
            approval_id=req.id,
            status=req.status,
        )
    if seen_hash != req.payload_hash:
        raise ApprovalConflictError(
            f"approval {req.id}'s payload changed since you read it; review the current version",
            approval_id=req.id,
            payload_hash=req.payload_hash,
        )
    if principal is not None and principal == req.principal:
        raise SeparationOfDutiesError(
            f"{principal} caused this run (it triggered it, or ingested the signals that "
            "fired it), so it cannot decide its actions; another reviewer's key must",
            approval_id=req.id,
            principal=principal,
        )
    if reviewer == req.triggered_by:
        raise SeparationOfDutiesError(
            "whoever triggered the run cannot approve its actions", approval_id=req.id
        )
    if req.role not in roles:
        raise ApprovalForbiddenError(
            f"this approval needs the {req.role!r} role", approval_id=req.id
        )
    if reviewer in req.approvals:
        raise ApprovalForbiddenError("one reviewer counts once toward a quorum", approval_id=req.id)
    if req.claimed_by and req.claimed_by != reviewer and (req.claim_expires_at or 0) > clock():
        raise ClaimedError(
            f"{req.claimed_by} is working on approval {req.id}",
            approval_id=req.id,
            claimed_by=req.claimed_by,
        )


__all__ = [
    "PENDING",
    "SETTLED",
    "ApprovalRequest",
    "Status",
    "audit_event",
    "check_may_decide",
    "document",
    "from_columns",
    "new_row",
    "payload_hash",
    "stored_document",
]
