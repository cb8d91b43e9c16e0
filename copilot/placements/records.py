"""The wing's records: what a decide returns, what "why not shown" lists, exposure events."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from copilot.ranking import Contribution

EventKind = Literal["impression", "accept", "dismiss", "snooze", "complete"]
EVENT_KINDS: tuple[str, ...] = ("impression", "accept", "dismiss", "snooze", "complete")


class Item(BaseModel):
    """The chosen candidate, as the app renders it."""

    model_config = ConfigDict(frozen=True)

    id: str
    content: dict[str, Any]
    priority: str


class Decision(BaseModel):
    """A decide's answer: the item (or none, with why), its explanation and its provenance."""

    model_config = ConfigDict(frozen=True)

    decision_id: str
    placement: str
    subject_id: str
    item: Item | None
    why: str | None = Field(description="reason code when no item is shown")
    explanation: str
    holdout: bool
    policy: str
    version: str
    probability: float
    level: str
    reasons: tuple[str, ...] = ()
    decided_at: float
    contributions: tuple[Contribution, ...] = Field(
        default=(), description="a learned policy's top feature contributions to the pick"
    )


class CandidateStatus(BaseModel):
    """One candidate in "why not shown": eligible, or every rule that excluded it."""

    model_config = ConfigDict(frozen=True)

    id: str
    eligible: bool
    excluded_by: tuple[str, ...]
    rule: str
    priority: str


class Explain(BaseModel):
    """Every candidate of a placement for a subject now, and what excluded each."""

    model_config = ConfigDict(frozen=True)

    placement: str
    subject_id: str
    level: str
    reasons: tuple[str, ...]
    holdout: bool
    would_show: str | None
    candidates: tuple[CandidateStatus, ...]


class EventIn(BaseModel):
    """An exposure event the app posts on a decision (idempotent by `event_id`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:\-]+$")
    kind: EventKind
    at: float | None = Field(default=None, description="epoch seconds; default now")
    until: float | None = Field(default=None, description="snooze only: until when")


class EventRecorded(BaseModel):
    """What an event post did: recorded now, or a redelivery of one already recorded."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    decision_id: str
    kind: str
    at: float
    until: float | None = None
    duplicate: bool = False


__all__ = [
    "EVENT_KINDS",
    "CandidateStatus",
    "Decision",
    "EventIn",
    "EventKind",
    "EventRecorded",
    "Explain",
    "Item",
]
