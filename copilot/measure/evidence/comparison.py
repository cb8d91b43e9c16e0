"""The comparison: arms of units with an exposure time, an outcome and a covariate, from any source.

Everything the evidence wing measures (sample ratio, the fixed and the anytime-valid lift,
CUPED, stop rules, the weekly review) reads `Comparison`s, never a table. A
`ComparisonSource` turns some experiment's records into them: workflow holdouts today
(`copilot.measure.evidence.holdouts.WorkflowHoldouts`); placement holdouts and
learned-policy holdouts plug in the same way (a source per wing, listed in
`Runtime.comparison_sources`), so their reviews, stop rules and pruning come for free.

A source's contract:

- one `Unit` per subject, in the arm it was *assigned* (intent to treat), with the time of
  its first exposure; `outcome` 1.0 when the outcome was observed at or after exposure
  (inside the window, if any), else 0.0;
- `covariate`: a number fixed before exposure (a declared signal's last value before it,
  or the outcome's own rate in the pre-period), NaN when not observed;
- `allocation`: the configured share of each arm, which the sample-ratio check tests the
  observed arm sizes against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from copilot.measure.evidence.cuped import Adjusted, cuped
from copilot.measure.evidence.sequential import DEFAULT_HORIZON, AnytimeInterval, anytime_lift
from copilot.measure.evidence.srm import SampleRatio, check_ratio
from copilot.measure.experiments import Arm, Lift, lift

TREATED, HOLDOUT = "treated", "holdout"
Kind = Literal["workflow", "placement", "policy"]


@dataclass(frozen=True, slots=True)
class Unit:
    """One subject in one comparison."""

    unit_id: str
    arm: str  # TREATED or HOLDOUT
    exposed_at: float
    outcome: float  # 1.0 converted, 0.0 not
    covariate: float = math.nan
    segment: str = "-"


@dataclass(frozen=True)
class Comparison:
    """Treated vs holdout of one thing (a workflow, a placement, a learned policy) on one outcome."""

    kind: Kind
    name: str
    outcome: str
    allocation: Mapping[str, float]  # arm → configured share, summing to 1
    units: Sequence[Unit]
    covariate: str | None = None  # what the units' covariate is, for the reader
    costs: Mapping[str, float] = field(default_factory=dict)  # e.g. proposals reviewed

    def arm(self, name: str) -> list[Unit]:
        """The units assigned to one arm."""
        return [u for u in self.units if u.arm == name]


class ComparisonSource(Protocol):
    """Turns one wing's experiment records into comparisons (the hook for new wings)."""

    def comparisons(
        self, conn: Connection, *, tenant: str, outcome: str, until: float
    ) -> list[Comparison]:
        """Every comparison of the tenant on `outcome`, counting exposures up to `until`."""
        ...


class Evidence(BaseModel):
    """What the data say about one comparison, and which interval to trust."""

    model_config = ConfigDict(frozen=True)

    kind: str
    name: str
    outcome: str
    treated: int
    holdout: int
    srm: SampleRatio
    lift: Lift | None  # fixed-horizon (Newcombe): trust it read once at the planned size
    anytime: AnytimeInterval | None  # trust it when looking early or repeatedly
    cuped: Adjusted | None
    trust: str  # one sentence: which result to read, and why


def arms_of(c: Comparison) -> tuple[Arm, Arm]:
    """Successes and sizes per arm."""
    t, h = c.arm(TREATED), c.arm(HOLDOUT)
    return (Arm(n=len(t), successes=int(sum(u.outcome > 0 for u in t))),
            Arm(n=len(h), successes=int(sum(u.outcome > 0 for u in h))))  # fmt: skip


def evaluate(
    c: Comparison,
    *,
    alpha: float = 0.05,
    horizon: int = DEFAULT_HORIZON,
    srm_threshold: float = 0.001,
) -> Evidence:
    """Sample ratio, the two intervals and CUPED for one comparison."""
    t, h = arms_of(c)
    shares = [c.allocation.get(TREATED, 0.0), c.allocation.get(HOLDOUT, 0.0)]
    srm = check_ratio([t.n, h.n], shares, arms=[TREATED, HOLDOUT], threshold=srm_threshold)
    fixed = lift(t, h, alpha=alpha) if t.n and h.n else None
    anytime = anytime_lift(t, h, alpha=alpha, horizon=horizon) if t.n and h.n else None
    adjusted = None
    if t.n >= 2 and h.n >= 2:
        tu, hu = c.arm(TREATED), c.arm(HOLDOUT)
        adjusted = cuped(
            np.array([u.outcome for u in tu]), np.array([u.outcome for u in hu]),
            np.array([u.covariate for u in tu]), np.array([u.covariate for u in hu]),
            alpha=alpha, covariate=c.covariate,
        )  # fmt: skip
    return Evidence(kind=c.kind, name=c.name, outcome=c.outcome, treated=t.n, holdout=h.n,
                    srm=srm, lift=fixed, anytime=anytime, cuped=adjusted,
                    trust=_trust(srm, t.n + h.n, horizon))  # fmt: skip


def _trust(srm: SampleRatio, units: int, horizon: int) -> str:
    if srm.mismatch:
        return ("neither: the arms are not the sizes the allocation says (sample-ratio "
                "mismatch); fix assignment or logging first")  # fmt: skip
    if units < horizon:
        return (f"the anytime-valid interval: {units} of the {horizon} planned subjects, and "
                "an early or repeated look invalidates the fixed-horizon one")  # fmt: skip
    return ("the fixed-horizon interval, read once now that the planned sample is in; the "
            "anytime-valid one stays valid for any later look")  # fmt: skip


def evaluate_all(
    comparisons: Sequence[Comparison], *, alpha: float = 0.05, horizon: int = DEFAULT_HORIZON
) -> list[Evidence]:
    """`evaluate` each comparison that has a holdout configured and a subject in it."""
    return [evaluate(c, alpha=alpha, horizon=horizon) for c in comparisons
            if c.allocation.get(HOLDOUT, 0) > 0 and c.units]  # fmt: skip
