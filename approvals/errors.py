"""Errors raised by the approval gate.

CopilotError                      (audit.errors) root
└── ApprovalError                 approval.*
    ├── UnknownActionKindError    approval.unknown_kind      not in the catalog: denied
    ├── InvalidPayloadError       approval.invalid_payload   fails the kind's schema
    ├── ApprovalNotFoundError     approval.not_found
    ├── ApprovalConflictError     approval.conflict          decided already, stale hash, superseded
    ├── ApprovalForbiddenError    approval.forbidden         self-approval, wrong role, voted already
    └── ClaimedError              approval.claimed           another reviewer holds the claim
"""

from __future__ import annotations

from audit.errors import CopilotError


class ApprovalError(CopilotError):
    """Something the approval gate refused."""

    code = "approval.error"


class UnknownActionKindError(ApprovalError):
    """The action kind is not in the catalog; the model cannot invent kinds."""

    code = "approval.unknown_kind"


class InvalidPayloadError(ApprovalError):
    """A payload (proposed or edited) does not fit its action kind's schema."""

    code = "approval.invalid_payload"


class ApprovalNotFoundError(ApprovalError):
    """No such approval request (in this tenant)."""

    code = "approval.not_found"


class ApprovalConflictError(ApprovalError):
    """Someone decided first, the payload changed since it was read, or it was superseded."""

    code = "approval.conflict"


class ApprovalForbiddenError(ApprovalError):
    """This reviewer may not make this decision (separation of duties, role, already voted)."""

    code = "approval.forbidden"


class ClaimedError(ApprovalError):
    """Another reviewer has claimed the request for a few minutes."""

    code = "approval.claimed"
