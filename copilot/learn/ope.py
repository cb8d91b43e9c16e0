"""Off-policy evaluation: what a candidate policy would have earned on decisions another made.

Three estimators over the logged decisions (each with the logged action's propensity
under the logging policy and its joined reward):

- **IPS** (inverse propensity scoring, Horvitz & Thompson 1952): ``mean(w·r)`` with
  ``w = pi(a|x) / mu(a|x)``. Unbiased when every action the target takes had a logged
  probability above zero; its variance grows with the largest weight.
- **SNIPS** (self-normalized IPS, Swaminathan & Joachims 2015): ``Σ w·r / Σ w``. A little
  bias, much less variance; invariant to adding a constant to every reward.
- **DR** (doubly robust, Dudík, Langford & Li 2011): a reward model's prediction under the
  target plus the weighted residual of the logged action, ``q^_pi(x) + w·(r - q^(x, a))``.
  Unbiased if either the propensities or the reward model are right.

Intervals are the normal approximation of each estimator's influence function (for SNIPS
the delta method), so a difference of two policies on the same decisions is a paired
difference with the same machinery (`compare`). Diagnostics say when not to trust them:
the effective sample size ``(Σw)² / Σw²`` (Kish), the largest weight, and the support (the
target's mass on actions the logging policy could take). Everything is vectorized numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from copilot.learn.errors import EvaluationError

Estimator = Literal["ips", "snips", "dr"]
ESTIMATORS: tuple[Estimator, ...] = ("ips", "snips", "dr")
Array = NDArray[np.float64]


class Estimate(BaseModel):
    """One estimator's value of one policy, its interval and the diagnostics that qualify it."""

    model_config = ConfigDict(frozen=True)

    estimator: Estimator
    value: float
    low: float
    high: float
    n: int
    ess: float  # effective sample size of the importance weights (Kish)
    max_weight: float
    support: float  # the target's share of mass on actions the logging policy could take


class Difference(BaseModel):
    """Candidate minus current on the same decisions (a paired interval), and its verdict."""

    model_config = ConfigDict(frozen=True)

    estimator: Estimator
    segment: str | None
    n: int
    candidate: float
    current: float
    difference: float
    low: float
    high: float
    harmed: bool  # the whole interval lies below zero: the report's harm rule


@dataclass(frozen=True)
class Logged:
    """The logged decisions as arrays, one row per decision.

    ``target`` is the evaluated policy's probability of the logged action; ``q_logged``
    and ``q_target`` are the reward model's prediction for the logged action and its
    expectation under the target (DR only); ``support`` is the target's mass on actions
    with a logged probability above zero (1.0 where unknown).
    """

    propensity: Array
    reward: Array
    target: Array
    q_logged: Array | None = None
    q_target: Array | None = None
    support: Array | None = None
    segment: NDArray[np.str_] | None = None

    def __post_init__(self) -> None:
        n = self.propensity.shape[0]
        for name in ("reward", "target", "q_logged", "q_target", "support", "segment"):
            value = getattr(self, name)
            if value is not None and value.shape != (n,):
                raise EvaluationError(f"{name} has shape {value.shape}, expected ({n},)")
        if n and (np.any(self.propensity <= 0) or np.any(self.propensity > 1)):
            raise EvaluationError("every logged propensity must lie in (0, 1]")
        if n and (np.any(self.target < 0) or np.any(self.target > 1)):
            raise EvaluationError("target probabilities must lie in [0, 1]")

    @property
    def weights(self) -> Array:
        """``pi(a|x) / mu(a|x)`` per decision."""
        return self.target / self.propensity

    def subset(self, mask: NDArray[np.bool_]) -> Logged:
        """The rows where ``mask`` holds."""
        def cut(a: NDArray[np.generic] | None) -> NDArray[np.generic] | None:
            return None if a is None else a[mask]

        return Logged(self.propensity[mask], self.reward[mask], self.target[mask],
                      cut(self.q_logged), cut(self.q_target), cut(self.support),  # type: ignore[arg-type]
                      cut(self.segment))  # type: ignore[arg-type]  # fmt: skip


def z_of(alpha: float) -> float:
    """The two-sided normal quantile for a (1 - alpha) interval."""
    if not 0 < alpha < 1:
        raise EvaluationError(f"alpha must lie in (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1 - alpha / 2)


def influence(data: Logged, estimator: Estimator) -> tuple[float, Array]:
    """The estimate and each decision's influence on it (mean ≈ 0), for intervals and pairs."""
    n = data.propensity.shape[0]
    if n == 0:
        raise EvaluationError("no logged decisions to evaluate on")
    w = data.weights
    if estimator == "ips":
        phi = w * data.reward
        value = float(phi.mean())
        return value, phi - value
    if estimator == "snips":
        total = float(w.sum())
        if total <= 0:
            raise EvaluationError("the target never takes a logged action: SNIPS is undefined")
        value = float((w * data.reward).sum() / total)
        return value, w * (data.reward - value) / (total / n)
    if estimator == "dr":
        if data.q_logged is None or data.q_target is None:
            raise EvaluationError("doubly robust needs the reward model's predictions")
        phi = data.q_target + w * (data.reward - data.q_logged)
        value = float(phi.mean())
        return value, phi - value
    raise EvaluationError(f"unknown estimator {estimator!r}; use one of {', '.join(ESTIMATORS)}")


def _half_width(psi: Array, z: float) -> float:
    n = psi.shape[0]
    if n < 2:
        return math.inf
    return z * float(np.sqrt(np.sum(psi**2) / (n - 1) / n))


def estimate(data: Logged, estimator: Estimator, *, alpha: float = 0.05) -> Estimate:
    """One estimator's value with its (1 - alpha) interval and the weight diagnostics."""
    value, psi = influence(data, estimator)
    half = _half_width(psi, z_of(alpha))
    w = data.weights
    square = float(np.sum(w**2))
    return Estimate(
        estimator=estimator, value=value, low=value - half, high=value + half,
        n=int(w.shape[0]), ess=float(w.sum()) ** 2 / square if square > 0 else 0.0,
        max_weight=float(w.max()),
        support=float(data.support.mean()) if data.support is not None else 1.0,
    )  # fmt: skip


def evaluate(
    data: Logged, *, estimators: Sequence[Estimator] = ESTIMATORS, alpha: float = 0.05
) -> dict[Estimator, Estimate]:
    """Every requested estimator on the same decisions (DR only when predictions are given)."""
    wanted = [e for e in estimators if e != "dr" or data.q_logged is not None]
    return {e: estimate(data, e, alpha=alpha) for e in wanted}


def difference(
    candidate: Logged, current: Logged, estimator: Estimator, *, alpha: float = 0.05,
    segment: str | None = None,
) -> Difference:  # fmt: skip
    """Candidate minus current on the same decisions, with a paired (1 - alpha) interval."""
    if candidate.propensity.shape != current.propensity.shape:
        raise EvaluationError("candidate and current must be evaluated on the same decisions")
    vc, pc = influence(candidate, estimator)
    v0, p0 = influence(current, estimator)
    half = _half_width(pc - p0, z_of(alpha))
    d = vc - v0
    return Difference(
        estimator=estimator, segment=segment, n=int(pc.shape[0]), candidate=vc, current=v0,
        difference=d, low=d - half, high=d + half, harmed=d + half < 0,
    )  # fmt: skip


def compare(
    candidate: Logged,
    current: Logged,
    *,
    estimator: Estimator = "dr",
    alpha: float = 0.05,
    min_segment: int = 30,
) -> tuple[Difference, list[Difference]]:
    """The overall paired difference, and one per segment with at least ``min_segment`` rows.

    A segment is harmed when its whole interval lies below zero, the harm rule the report
    applies online (`copilot.measure.guardrails.segment_findings`).
    """
    overall = difference(candidate, current, estimator, alpha=alpha)
    segments: list[Difference] = []
    if candidate.segment is not None:
        for value in sorted({str(s) for s in candidate.segment.tolist()}):
            mask = candidate.segment == value
            if int(mask.sum()) >= min_segment:
                segments.append(difference(candidate.subset(mask), current.subset(mask),
                                           estimator, alpha=alpha, segment=value))  # fmt: skip
    return overall, segments


def target_arrays(
    chosen: Sequence[str | None],
    distributions: Sequence[Mapping[str, float]],
    logged_support: Sequence[Mapping[str, float]] | None = None,
) -> tuple[Array, Array]:
    """The target's probability of each logged action, and its mass on supported actions."""
    target = np.fromiter(
        (d.get(c, 0.0) if c is not None else 0.0 for c, d in zip(chosen, distributions, strict=True)),
        dtype=np.float64, count=len(chosen),
    )  # fmt: skip
    if logged_support is None:
        return target, np.ones(len(chosen))
    support = np.fromiter(
        (sum(p for a, p in d.items() if s.get(a, 0.0) > 0) if s else 1.0
         for d, s in zip(distributions, logged_support, strict=True)),
        dtype=np.float64, count=len(chosen),
    )  # fmt: skip
    return target, support


__all__ = [
    "ESTIMATORS",
    "Difference",
    "Estimate",
    "Estimator",
    "Logged",
    "compare",
    "difference",
    "estimate",
    "evaluate",
    "influence",
    "target_arrays",
    "z_of",
]
