"""Delivery: each approved action's way to the app, in states every user can see.

`ready -> claimed -> delivered | failed (retrying) -> dead`, then a person may retry
(`ready` again) or cancel. Outbox actions are claimed and acknowledged by the app through
the action feed (`GET /v1/actions`, `POST /v1/actions/{id}/ack`); push routes (webhook,
celery, plug-ins) are moved by the executor's result. Every change commits with its audit
event.
"""

from __future__ import annotations

# Errors
from copilot.delivery.errors import (
    ClaimLostError,
    DeliveryConflictError,
    DeliveryError,
    DeliveryNotFoundError,
)

# Records and states
from copilot.delivery.model import CLAIMABLE, OUTBOX, SETTLED, Delivery, State, backoff

# The store
from copilot.delivery.store import DeliveryStore, NewDelivery, Policy

__all__ = [
    # Records and states
    "CLAIMABLE",
    "OUTBOX",
    "SETTLED",
    "Delivery",
    "State",
    "backoff",
    # Errors
    "ClaimLostError",
    "DeliveryConflictError",
    "DeliveryError",
    "DeliveryNotFoundError",
    # The store
    "DeliveryStore",
    "NewDelivery",
    "Policy",
]
