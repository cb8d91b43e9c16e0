"""Placements, the crawl stage in the app: what a subject sees in a slot now, and why.

>>> from copilot.placements import PlacementRegistry, placement
>>> slot = placement(name="tooltip.hello", candidates=[{"id": "hi", "content": {"title": "Hi"}}])
>>> PlacementRegistry([slot]).get("tooltip.hello").candidates[0].id
'hi'
"""

from __future__ import annotations

# Deciding and recording
from copilot.placements.decide import Decider

# Errors
from copilot.placements.errors import (
    ContextError,
    DecisionNotFoundError,
    EventError,
    PlacementDefinitionError,
    PlacementError,
    TokenError,
    UnknownPlacementError,
)
from copilot.placements.events import Events

# Declarations
from copilot.placements.model import (
    DEFAULT_CLASSES,
    Caps,
    Nudge,
    Placement,
    PlacementCandidate,
    PriorityClass,
    placement,
)

# Records
from copilot.placements.records import (
    EVENT_KINDS,
    CandidateStatus,
    Decision,
    EventIn,
    EventRecorded,
    Explain,
    Item,
)
from copilot.placements.registry import PlacementRegistry, PolicyRegistry

# Subject tokens
from copilot.placements.tokens import SubjectToken, TokenSigner

__all__ = [
    # Declarations
    "DEFAULT_CLASSES",
    "Caps",
    "Nudge",
    "Placement",
    "PlacementCandidate",
    "PlacementRegistry",
    "PolicyRegistry",
    "PriorityClass",
    "placement",
    # Deciding and recording
    "Decider",
    "Events",
    # Records
    "EVENT_KINDS",
    "CandidateStatus",
    "Decision",
    "EventIn",
    "EventRecorded",
    "Explain",
    "Item",
    # Subject tokens
    "SubjectToken",
    "TokenSigner",
    # Errors
    "ContextError",
    "DecisionNotFoundError",
    "EventError",
    "PlacementDefinitionError",
    "PlacementError",
    "TokenError",
    "UnknownPlacementError",
]
