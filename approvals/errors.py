"""Errors raised by the approval gate.

CopilotError                      (audit.errors) root
└── ApprovalError                 approval.*
    ├── UnknownActionKindError    approval.unknown_kind      not in the catalog: denied
    ├── InvalidPayloadError       approval.invalid_payload   fails the kind's schema
    │   ├── SubjectMismatchError  approval.subject_mismatch  a subject field names another subject
    │   └── SubjectLockedError    approval.subject_locked    an edit changes a subject field
    ├── ApprovalNotFoundError     approval.not_found
    ├── ApprovalConflictError     approval.conflict          decided already, stale hash, superseded
    ├── ApprovalForbiddenError    approval.forbidden         wrong role, voted already
    │   └── SeparationOfDutiesError  approval.separation_of_duties  the run's own principal
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


class SubjectMismatchError(InvalidPayloadError):
    """A proposal's subject field names another subject than its run's."""

    code = "approval.subject_mismatch"


class SubjectLockedError(InvalidPayloadError):
    """An edit changes a field that names the action's subject (bound to the run's subject)."""

    code = "approval.subject_locked"


class ApprovalNotFoundError(ApprovalError):
    """No such approval request (in this tenant)."""

    code = "approval.not_found"


class ApprovalConflictError(ApprovalError):
    """Someone decided first, the payload changed since it was read, or it was superseded."""

    code = "approval.conflict"


class ApprovalForbiddenError(ApprovalError):
    """This reviewer may not make this decision (separation of duties, role, already voted)."""

    code = "approval.forbidden"


class SeparationOfDutiesError(ApprovalForbiddenError):
    """Whoever caused the run (its principal, or the name that triggered it) decides nothing of it."""

    code = "approval.separation_of_duties"


class ClaimedError(ApprovalError):
    """Another reviewer has claimed the request for a few minutes."""

    code = "approval.claimed"
