"""approvals: the gate. Action kinds, policies, requests bound to payloads, decisions. Depends only on `audit`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Errors
from approvals.errors import (
    ApprovalConflictError,
    ApprovalError,
    ApprovalForbiddenError,
    ApprovalNotFoundError,
    ClaimedError,
    InvalidPayloadError,
    SeparationOfDutiesError,
    SubjectLockedError,
    SubjectMismatchError,
    UnknownActionKindError,
)

# Action kinds
from approvals.kinds import ActionKind, Catalog, OnExpiry, Risk

# Notifying reviewers
from approvals.notify import Notifier, WebhookNotifier

# Policies
from approvals.policy import Evaluation, Facts, Hold, Match, Outcome, Policy, Predicate, Rule

# Requests and decisions (the gate, which needs SQL, is imported on first use: see below)
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
    "Hold",
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
    "SeparationOfDutiesError",
    "SubjectLockedError",
    "SubjectMismatchError",
    "UnknownActionKindError",
]

if TYPE_CHECKING:
    from approvals.gate import Gate


def __getattr__(name: str) -> Any:
    """`Gate` on first use, so `approvals.request` and the HTTP client load no SQL."""
    if name == "Gate":
        from approvals.gate import Gate

        return Gate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """What `dir()` and completion show: the public names, the lazy ones included."""
    return sorted(set(globals()) | set(__all__))
