"""The report's data: what `build` computes, `figures` draws from and `html` renders.

Below all three, so none imports another to name a type (no circle, type-only included).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from copilot.measure.evidence.comparison import Evidence
from copilot.measure.experiments import Lift, Method
from copilot.measure.feedback import Group
from copilot.measure.guardrails import Finding, GuardrailCheck, SegmentEffect


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
    # Per comparison (each workflow with a holdout): sample ratio, the anytime-valid
    # interval beside the fixed one, CUPED; and the comparisons paused by a stop rule.
    evidence: list[Evidence] = []
    paused: list[str] = []
