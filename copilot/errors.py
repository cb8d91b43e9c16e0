"""Errors raised by copilot's framework layer.

    CopilotError                   (audit.errors) root: code, message, details
    ├── AuditError                 audit.*             (audit.errors)
    ├── ConfigError                config.*            settings or environment are wrong
    │   └── DatabaseConfigError    config.database     database URL unusable
    ├── WorkflowDefinitionError    workflow.invalid    a workflow or step is declared wrongly
    ├── UnknownWorkflowError       workflow.unknown    no such workflow (or version) registered
    ├── RunError                   run.*               a run cannot do what was asked
    │   ├── RunNotFoundError       run.not_found
    │   ├── RunStateError          run.conflict        the run is not in a state that allows it
    │   └── StepFailedError        run.step_failed     a step raised; the run failed
    ├── AmbiguousIdError           id.ambiguous        a short id starts more than one id
    └── AuthError                  auth.*              who is asking, and what they may do
        ├── UnauthenticatedError   auth.unauthenticated  no key, or an unknown or revoked one
        ├── ForbiddenError         auth.forbidden      the key's roles do not allow it
        ├── KeyNotFoundError       key.not_found       no such key in this tenant
        └── KeyNameTakenError      key.name_taken      the tenant has a key of that name

HTTP and CLI map codes to statuses and exit codes in one place each; messages say the fix.

    TransientError                 (not a CopilotError) a fault worth retrying: the worker
                                   hands the run back and retries; no user ever sees it
"""

from __future__ import annotations

from audit.errors import CopilotError


class ConfigError(CopilotError):
    """Configuration or environment is wrong; the message names the setting to change."""

    code = "config.invalid"


class DatabaseConfigError(ConfigError):
    """The database URL cannot be used (driver missing, unreachable, wrong scheme)."""

    code = "config.database"


class WorkflowDefinitionError(CopilotError):
    """A workflow or one of its steps is declared wrongly; raised at import time."""

    code = "workflow.invalid"


class UnknownWorkflowError(CopilotError):
    """No workflow of that name (or version) is registered."""

    code = "workflow.unknown"


class RunError(CopilotError):
    """A run cannot do what was asked."""

    code = "run.error"


class RunNotFoundError(RunError):
    """No run with that id (in this tenant)."""

    code = "run.not_found"


class RunStateError(RunError):
    """The run's state does not allow the operation (e.g. resuming a run that is not waiting)."""

    code = "run.conflict"


class StepFailedError(RunError):
    """A step raised a non-transient error; the run is marked failed."""

    code = "run.step_failed"


class AmbiguousIdError(CopilotError):
    """A short id (a prefix) given at the command line starts more than one id."""

    code = "id.ambiguous"


class AuthError(CopilotError):
    """Authentication or authorization refused the request."""

    code = "auth.error"


class UnauthenticatedError(AuthError):
    """No API key, or one that is unknown or revoked."""

    code = "auth.unauthenticated"


class ForbiddenError(AuthError):
    """The key is valid but its roles do not allow this operation."""

    code = "auth.forbidden"


class KeyNotFoundError(AuthError):
    """No API key with that id (in this tenant)."""

    code = "key.not_found"


class KeyNameTakenError(AuthError):
    """The tenant already has a key (live or revoked) of that name: names identify keys."""

    code = "key.name_taken"


class TransientError(Exception):
    """A fault worth retrying later (database unavailable, lease lost to a slow commit).

    Deliberately outside the `CopilotError` tree: it never reaches a user, and code that
    turns CopilotErrors into failed runs or HTTP answers must let it pass.
    """


__all__ = [
    "AmbiguousIdError",
    "AuthError",
    "ConfigError",
    "CopilotError",
    "DatabaseConfigError",
    "ForbiddenError",
    "KeyNameTakenError",
    "KeyNotFoundError",
    "RunError",
    "RunNotFoundError",
    "RunStateError",
    "StepFailedError",
    "TransientError",
    "UnauthenticatedError",
    "UnknownWorkflowError",
    "WorkflowDefinitionError",
]
