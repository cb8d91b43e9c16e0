"""Errors raised by the audit trail.

    CopilotError                      root of every error the project raises (code, message, details)
    └── AuditError                    audit.*
        ├── CanonicalizationError     audit.non_canonical   value has no RFC 8785 form
        ├── ChainConflictError        audit.chain_conflict  the head moved under a writer
        ├── CheckpointRefusedError    audit.checkpoint_refused  head inconsistent with the last checkpoint
        ├── SigningKeyError           audit.signing_key     key file missing, unreadable or wrong type
        └── BundleError               audit.bundle_invalid  an export bundle is unreadable

The root lives here because `audit` is the bottom layer: every other package may import
it, it imports none of them.
"""

from __future__ import annotations

from typing import Any


class CopilotError(Exception):
    """Root of every copilot error: a stable `code`, a message that says what to do, details."""

    code: str = "copilot.error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The error body used by the HTTP API and `--json` CLI output."""
        return {"code": self.code, "message": self.message, "details": self.details}


class AuditError(CopilotError):
    """Something went wrong in the audit trail."""

    code = "audit.error"


class CanonicalizationError(AuditError):
    """A value cannot be encoded as RFC 8785 canonical JSON (NaN, Infinity, |int| >= 2^53)."""

    code = "audit.non_canonical"


class ChainConflictError(AuditError):
    """Another writer extended the chain between our read of the head and our insert."""

    code = "audit.chain_conflict"


class CheckpointRefusedError(AuditError):
    """The signer refuses a head that does not extend its previous checkpoint."""

    code = "audit.checkpoint_refused"


class SigningKeyError(AuditError):
    """The checkpoint signing key is missing, unreadable or not an ed25519 key."""

    code = "audit.signing_key"


class BundleError(AuditError):
    """An export bundle is missing files or is not in the expected format."""

    code = "audit.bundle_invalid"
