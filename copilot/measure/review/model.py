"""The weekly review's data: what `build` computes, `store` keeps as JSON and `html` draws."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

from copilot.measure.evidence.cohorts import Cohort
from copilot.measure.evidence.comparison import Evidence
from copilot.measure.evidence.funnel import FunnelStep, PlacementFunnel
from copilot.measure.evidence.rules import Paused, as_paused

# A review stored before placements and learned policies could pause named workflows alone.
PausedItem = Annotated[Paused, BeforeValidator(as_paused)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class LiftPoint(_Frozen):
    """One comparison's lift as of one week's end: fixed and anytime-valid intervals, SRM."""

    week: str
    treated: int
    holdout: int
    difference: float | None
    low: float | None  # Newcombe, fixed-horizon
    high: float | None
    anytime_low: float | None  # the confidence sequence: valid at every weekly look
    anytime_high: float | None
    srm_p: float | None
    srm_mismatch: bool


class Trend(_Frozen):
    """One comparison's lift, week by week (cumulative: everyone exposed by each week's end)."""

    kind: str
    name: str
    outcome: str
    points: list[LiftPoint]


class WeekOps(_Frozen):
    """What people and the machinery did in one week, tenant-wide."""

    week: str
    approved: int
    edited: int
    rejected: int
    acceptance_rate: float | None  # of people's decisions
    edit_rate: float | None
    rejection_rate: float | None
    levels: dict[str, int]  # runs started per degradation level
    deliveries_failed: int  # deliveries that went dead or are retrying, changed this week
    exposures: dict[str, int]  # subjects first exposed per comparison (placements later)


class WeekLift(_Frozen):
    """The anytime-valid interval of a pruning candidate's lift as of one week."""

    week: str
    difference: float
    low: float
    high: float


class PruneItem(_Frozen):
    """The durable-lift evidence for one thing that costs something: prune, keep or undecided."""

    kind: Literal["workflow", "action_kind", "signal", "placement"]
    name: str
    weeks: list[WeekLift]
    cost: dict[str, int]  # e.g. proposals reviewed by people over the weeks
    verdict: Literal["prune", "keep", "undecided", "no_evidence"]
    why: str


class WeeklyReview(_Frozen):
    """One tenant's week: the JSON stored, the page's every number, the notifier's headline."""

    tenant: str
    week: str  # the reviewed week's Monday (UTC), ISO date
    generated_at: float
    outcome: str | None
    retention_outcome: str | None
    headline: str
    trends: list[Trend]
    guardrails: list[Trend]  # each guardrail outcome's increase, same shape
    ops: list[WeekOps]
    evidence: list[Evidence]  # each comparison as of the week's end
    paused: list[PausedItem]  # workflows, placements and learned policies a stop rule paused
    cohorts: list[Cohort]
    funnel: list[FunnelStep]  # per workflow: proposed → accepted → completed
    prune: list[PruneItem]
    # per placement and segment: impression → accept → complete (absent from older reviews)
    placement_funnel: list[PlacementFunnel] = []


__all__ = ["Cohort", "FunnelStep", "LiftPoint", "PlacementFunnel", "PruneItem", "Trend",
           "WeekLift", "WeekOps", "WeeklyReview"]  # fmt: skip
