"""Peeking-safe intervals for the lift: an asymptotic confidence sequence.

A fixed-horizon interval (the report's Newcombe) is valid at one, pre-planned look. Look
every day and stop when it excludes zero, and the chance of a false winner grows with
every look (about a quarter over 30 daily looks at 5%, measured in the tests). A
*confidence sequence* is a sequence of intervals that hold the truth at every time at
once with probability 1−α, so any look, and stopping at any of them, stays valid.

The choice: the **asymptotic confidence sequence** of Waudby-Smith, Arbour, Sinha,
Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence
sequences" (Annals of Statistics, 2024; arXiv:2103.06476), Theorem 2.2, with the normal
mixture boundary of Howard, Ramdas, McAuliffe and Sekhon (Annals of Statistics 49(2),
2021). For an estimate with per-unit standard deviation σ̂ over t units:

    estimate ± σ̂ · √( 2(tρ² + 1) / (t²ρ²) · log( √(tρ² + 1) / α ) )

It is what GrowthBook runs as its sequential test. Why this rather than an mSPRT: it
needs only the estimate and its standard error, so the same formula covers the
difference of two proportions *and* the CUPED-adjusted estimate (plug in the reduced
variance), it is closed form and vectorises, and its validity does not rest on a prior
over the effect being right (an mSPRT's does for its power). ρ tunes where the sequence
is tightest: ρ² = (−2 log α + log(−2 log α + 1)) / horizon makes it tightest at
`horizon` units, the planned sample size (`copilot experiment plan`). It is asymptotic:
at a few dozen subjects per arm it is not yet exact, so the variance uses the
Agresti–Caffo adjusted rates ((x+1)/(n+2)), which keeps early, tiny arms from looking
certain.

Which to trust when: the fixed-horizon interval at the planned sample size, read once;
the anytime-valid one whenever the data are looked at before then or more than once
(the weekly review looks every week, a guarded rollout every day).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from copilot.measure.experiments import Arm, ExperimentError, check_alpha

Array = npt.NDArray[np.float64]
DEFAULT_HORIZON = 10_000  # units; pass the plan's total when there is one


class AnytimeInterval(BaseModel):
    """A confidence sequence's interval for treated − holdout at this look."""

    model_config = ConfigDict(frozen=True)

    difference: float
    low: float
    high: float
    confidence: float
    horizon: int  # the sample size the sequence is tuned for
    method: str = "asymptotic-cs"  # Waudby-Smith et al. 2024

    @property
    def excludes_zero(self) -> bool:
        """Whether the sequence has confirmed an effect (of either sign)."""
        return self.low > 0 or self.high < 0


def rho_squared(alpha: float, horizon: float) -> float:
    """The mixture's tuning, tightest at `horizon` units (Howard et al. 2021, eq. for ρ)."""
    if horizon <= 0:
        raise ExperimentError(f"the horizon must be a positive number of units, got {horizon}")
    la = -2 * math.log(alpha)
    return (la + math.log(la + 1)) / horizon


def boundary(t: npt.ArrayLike, *, alpha: float, horizon: float) -> Array:
    """The normal-mixture boundary per unit of σ̂ after t units (the half-width ÷ σ̂)."""
    t = np.asarray(t, dtype=np.float64)
    r2 = rho_squared(alpha, horizon)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.sqrt(2 * (t * r2 + 1) / (t * t * r2) * np.log(np.sqrt(t * r2 + 1) / alpha))
    return np.where(t > 0, b, np.inf)


def sequence(
    estimate: npt.ArrayLike,
    se: npt.ArrayLike,
    units: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    horizon: float = DEFAULT_HORIZON,
) -> tuple[Array, Array]:
    """The sequence's (low, high) for estimates with standard errors `se` after `units` units.

    σ̂ = se·√units: the per-unit spread whose mean the estimate is.
    """
    units_a = np.asarray(units, dtype=np.float64)
    half = (
        np.asarray(se, dtype=np.float64)
        * np.sqrt(units_a)
        * boundary(units_a, alpha=alpha, horizon=horizon)
    )
    est = np.asarray(estimate, dtype=np.float64)
    return est - half, est + half


def proportions(
    x_t: npt.ArrayLike,
    n_t: npt.ArrayLike,
    x_h: npt.ArrayLike,
    n_h: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    horizon: float = DEFAULT_HORIZON,
) -> tuple[Array, Array, Array]:
    """(difference, low, high) of treated − holdout rates, elementwise over arrays of counts."""
    xt, nt, xh, nh = (np.asarray(v, dtype=np.float64) for v in (x_t, n_t, x_h, n_h))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where((nt > 0) & (nh > 0), xt / np.maximum(nt, 1) - xh / np.maximum(nh, 1), 0.0)
        pt, ph = (xt + 1) / (nt + 2), (xh + 1) / (nh + 2)
        se = np.sqrt(pt * (1 - pt) / nt + ph * (1 - ph) / nh)
    low, high = sequence(d, se, nt + nh, alpha=alpha, horizon=horizon)
    return d, low, high


def anytime_lift(
    treated: Arm, holdout: Arm, *, alpha: float = 0.05, horizon: int = DEFAULT_HORIZON
) -> AnytimeInterval:
    """The anytime-valid interval for one comparison's lift on a binary outcome."""
    check_alpha(alpha)
    if treated.n == 0 or holdout.n == 0:
        raise ExperimentError(
            f"an interval needs subjects in both arms (treated {treated.n}, holdout {holdout.n})",
            code="experiment.empty_arm",
        )
    d, low, high = proportions(treated.successes, treated.n, holdout.successes, holdout.n,
                               alpha=alpha, horizon=horizon)  # fmt: skip
    return AnytimeInterval(difference=float(d), low=float(low), high=float(high),
                           confidence=1 - alpha, horizon=horizon)  # fmt: skip
