"""The report's data: what `build` computes, `figures` draws from and `html` renders.

Below all three, so none imports another to name a type (no circle, type-only included).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

from copilot.measure.evidence.cohorts import Cohort
from copilot.measure.evidence.comparison import Evidence
from copilot.measure.evidence.funnel import FunnelStep, PlacementFunnel
from copilot.measure.evidence.rules import Paused, as_paused
from copilot.measure.experiments import Lift, Method
from copilot.measure.feedback import Group
from copilot.measure.guardrails import Finding, GuardrailCheck, SegmentEffect
from copilot.measure.report.learning import LearningSection


class Point(BaseModel):
    """One labelled value, with an interval where it has one."""

    model_config = ConfigDict(frozen=True)

    label: str
    value: float
    low: float | None = None
    high: float | None = None
    flag: str | None = None  # e.g. a guardrail's status, drawn as the point's colour


class Series(BaseModel):
    """A named set of points (one arm, one decision)."""

    model_config = ConfigDict(frozen=True)

    name: str
    points: list[Point]


class Figure(BaseModel):
    """One plot: `interval` (points with error bars), `bars` (grouped) or `stacked` bars."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    kind: Literal["interval", "bars", "stacked"]
    unit: Literal["rate", "points", "seconds"]
    series: list[Series]
    reference: float | None = None  # a line to read against (0 for a lift)


class OutcomeLift(BaseModel):
    """The lift on one outcome, overall."""

    model_config = ConfigDict(frozen=True)

    outcome: str
    polarity: str
    improved: bool  # the point estimate moved the good way
    lift: Lift


class DeliveryCount(BaseModel):
    """Approved actions of one kind through one route: how their deliveries stand.

    `failed_attempts` counts attempts that did not deliver (a failed ack or executor error,
    a claim that timed out); `retrying` and `dead` are the actions in those states now.
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    route: str
    actions: int
    delivered: int
    retrying: int
    dead: int
    cancelled: int
    failed_attempts: int


class PlacementRow(PlacementFunnel):
    """One placement (overall, or one segment of it): exposure funnel and lift over its holdout.

    The funnel is the weekly review's (`copilot.measure.evidence.funnel`, over every
    decision): rates are over decisions that showed an item: `impression_rate` = shown with
    an impression, `accept_rate` = impressions accepted, `complete_rate` = accepts completed.
    `lift` is the report's outcome, treated vs holdout subjects by their first decision.
    """

    lift: Lift | None = None

    def cells(self) -> list[str]:
        """The row as the CLI table and the page show it (PLACEMENT_COLUMNS)."""

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v:.0%}"

        x = self.lift
        lift = "-" if x is None else (f"{x.difference * 100:+.1f} pts "
                                      f"[{x.low * 100:+.1f}, {x.high * 100:+.1f}]")  # fmt: skip
        return [self.placement, self.segment or "all", f"{self.treated}/{self.holdout}",
                str(self.shown), pct(self.impression_rate), pct(self.accept_rate),
                pct(self.complete_rate), lift]  # fmt: skip


PLACEMENT_COLUMNS = ["placement", "segment", "subjects (treated/holdout)", "shown",
                     "impression", "impression → accept", "accept → complete",
                     "lift over holdout"]  # fmt: skip


class Report(BaseModel):
    """Everything `copilot report` shows, as data."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    generated_at: float
    workflow: str | None
    outcome: str | None
    segment: str | None
    window_days: float | None
    alpha: float
    method: Method
    subjects: int
    treated: int
    holdout: int
    groups: list[Group]
    lift: OutcomeLift | None
    segments: list[SegmentEffect]
    guardrails: list[GuardrailCheck]
    warnings: list[Finding]
    figures: list[Figure]
    deliveries: list[DeliveryCount] = []
    placements: list[PlacementRow] = []
    # Per comparison (each workflow with a holdout): sample ratio, the anytime-valid
    # interval beside the fixed one, CUPED; and the comparisons paused by a stop rule.
    evidence: list[Evidence] = []
    paused: list[Annotated[Paused, BeforeValidator(as_paused)]] = []
    # Weekly cohorts by first exposure with retention curves (the review's definition), and
    # the workflows' proposed → accepted → completed funnel per workflow and level.
    retention_outcome: str | None = None
    cohorts: list[Cohort] = []
    funnel: list[FunnelStep] = []
    learning: list[LearningSection] = []  # learned surfaces, by the runtime's provider
