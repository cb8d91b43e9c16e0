"""Errors of the placements wing.

CopilotError                     (audit.errors) root
├── WorkflowDefinitionError      workflow.invalid   (copilot.errors)
│   └── PlacementDefinitionError placement.invalid  a placement is declared wrongly (start-up)
└── PlacementError               placement.*        a decide or an event was refused; nothing written
    ├── UnknownPlacementError    placement.unknown
    ├── ContextError             placement.context_undeclared | placement.context_invalid
    ├── DecisionNotFoundError    placement.decision_not_found
    ├── EventError               placement.event_invalid | placement.event_conflict |
    │                            placement.event_time
    └── TokenError               token.invalid | token.expired | token.revoked |
                                 token.wrong_subject | token.context_refused
"""

from __future__ import annotations

from copilot.errors import CopilotError, WorkflowDefinitionError


class PlacementDefinitionError(WorkflowDefinitionError):
    """A placement, candidate, priority class or policy is declared wrongly."""

    code = "placement.invalid"


class PlacementError(CopilotError):
    """A decide or an event was refused; nothing was written."""

    code = "placement.error"


class UnknownPlacementError(PlacementError):
    """No placement of that name is declared."""

    code = "placement.unknown"


class ContextError(PlacementError):
    """The request's context names a field the placement does not read, or a wrong type."""

    code = "placement.context_undeclared"


class DecisionNotFoundError(PlacementError):
    """No decision with that id (in this tenant)."""

    code = "placement.decision_not_found"


class EventError(PlacementError):
    """An exposure event does not fit its decision (or reuses an event id differently)."""

    code = "placement.event_invalid"


class TokenError(PlacementError):
    """A subject token is malformed, forged, expired, or used beyond its subject or scope."""

    code = "token.invalid"


__all__ = [
    "ContextError",
    "DecisionNotFoundError",
    "EventError",
    "PlacementDefinitionError",
    "PlacementError",
    "TokenError",
    "UnknownPlacementError",
]
