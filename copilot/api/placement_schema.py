"""The wire schema of placements: decide, exposure events, "why not shown", subject tokens.

Beside `copilot.api.schema` and as light (pydantic only), so the client loads no server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from copilot.api.schema import SUBJECT, JsonObject, RequestModel, SubjectId

PLACEMENT = r"^[a-z][a-z0-9_.]{0,199}$"
PlacementName = Annotated[str, Field(pattern=PLACEMENT, examples=["onboarding.next_step"])]


class DecideIn(RequestModel):
    """What to show `subject_id` in `placement` now; `context` holds declared signals only."""

    placement: PlacementName
    subject_id: SubjectId
    context: JsonObject = Field(default_factory=dict)


class ItemOut(BaseModel):
    """The chosen candidate: its id, validated content and priority class."""

    id: str
    content: dict[str, Any]
    priority: str


class DecisionOut(BaseModel):
    """The item (or none, with `why`), the explanation, the holdout flag, the policy and probability."""

    decision_id: str
    placement: str
    subject_id: str
    item: ItemOut | None
    why: str | None
    explanation: str
    holdout: bool
    policy: str
    version: str
    probability: float
    level: str
    reasons: list[str]
    decided_at: float


class PlacementEventIn(RequestModel):
    """An exposure event; a redelivered `event_id` is a no-op."""

    event_id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:\-]+$")]
    kind: Literal["impression", "accept", "dismiss", "snooze", "complete"]
    at: Annotated[float | None, Field(default=None, ge=0, le=32503680000)] = None
    until: Annotated[float | None, Field(default=None, ge=0, le=32503680000)] = None


class PlacementEventOut(BaseModel):
    """The recorded event (`duplicate`: it was already recorded, nothing was written)."""

    event_id: str
    decision_id: str
    kind: str
    at: float
    until: float | None = None
    duplicate: bool = False


class CandidateStatusOut(BaseModel):
    """One candidate and every rule that excludes it now."""

    id: str
    eligible: bool
    excluded_by: list[str]
    rule: str
    priority: str


class ExplainOut(BaseModel):
    """Every candidate of the placement for the subject, and what excluded each."""

    placement: str
    subject_id: str
    level: str
    reasons: list[str]
    holdout: bool
    would_show: str | None
    candidates: list[CandidateStatusOut]


class SubjectTokenIn(RequestModel):
    """Mint a token for one subject: decide and events only, for `ttl_seconds`."""

    subject_id: Annotated[str, Field(pattern=SUBJECT)]
    ttl_seconds: Annotated[float, Field(gt=0, le=3600)] = 900.0


class SubjectTokenOut(BaseModel):
    """The token (send it as `Authorization: Bearer ...`) and when it expires."""

    token: str
    subject_id: str
    expires_at: float


__all__ = [
    "CandidateStatusOut",
    "DecideIn",
    "DecisionOut",
    "ExplainOut",
    "ItemOut",
    "PlacementEventIn",
    "PlacementEventOut",
    "SubjectTokenIn",
    "SubjectTokenOut",
]
