"""approvals: the gate. Action kinds, policies, requests bound to payloads, decisions. Depends only on `audit`."""

from __future__ import annotations

# Errors
from approvals.errors import (
    ApprovalConflictError,
    ApprovalError,
    ApprovalForbiddenError,
    ApprovalNotFoundError,
    ClaimedError,
    InvalidPayloadError,
    UnknownActionKindError,
)

# The gate
from approvals.gate import Gate

# Action kinds
from approvals.kinds import ActionKind, Catalog, OnExpiry, Risk

# Notifying reviewers
from approvals.notify import Notifier, WebhookNotifier

# Policies
from approvals.policy import Evaluation, Facts, Match, Outcome, Policy, Predicate, Rule

# Requests and decisions
from approvals.request import ApprovalRequest, payload_hash

__all__ = [
    # Action kinds
    "ActionKind",
    "Catalog",
    "OnExpiry",
    "Risk",
    # Policies
    "Evaluation",
    "Facts",
    "Match",
    "Outcome",
    "Policy",
    "Predicate",
    "Rule",
    # Requests and decisions
    "ApprovalRequest",
    "Gate",
    "payload_hash",
    # Notifying reviewers
    "Notifier",
    "WebhookNotifier",
    # Errors
    "ApprovalConflictError",
    "ApprovalError",
    "ApprovalForbiddenError",
    "ApprovalNotFoundError",
    "ClaimedError",
    "InvalidPayloadError",
    "UnknownActionKindError",
]
