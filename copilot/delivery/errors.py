"""Errors of the delivery wing.

CopilotError                    (audit.errors)
└── DeliveryError               delivery.*
    ├── DeliveryNotFoundError   delivery.not_found   no such action in this tenant (404)
    ├── ClaimLostError          delivery.claim_lost  the claim expired and another consumer
    │                                                took the action, or never was yours (409)
    └── DeliveryConflictError   delivery.conflict    the action is in a state that does not
                                                     allow it (already acked otherwise,
                                                     retry of a delivered one...) (409)
"""

from __future__ import annotations

from audit.errors import CopilotError


class DeliveryError(CopilotError):
    """An action's delivery cannot do what was asked."""

    code = "delivery.error"


class DeliveryNotFoundError(DeliveryError):
    """No such action in the caller's tenant."""

    code = "delivery.not_found"


class ClaimLostError(DeliveryError):
    """The claim named is not the action's current one: it expired and another consumer took it."""

    code = "delivery.claim_lost"


class DeliveryConflictError(DeliveryError):
    """The action's state does not allow the change (e.g. acked already with another status)."""

    code = "delivery.conflict"


__all__ = ["ClaimLostError", "DeliveryConflictError", "DeliveryError", "DeliveryNotFoundError"]
