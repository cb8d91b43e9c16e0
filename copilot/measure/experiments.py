"""Experiment statistics: the lift of treated over holdout, its interval, power, planning, guardrails.

Pure functions over counts, standard library only (`statistics.NormalDist`, `random`), so
the HTTP API, the CLI and the report share one implementation and none needs numpy.

The choices, and why:

- **Interval for a difference of two proportions: Newcombe's hybrid score** (Newcombe 1998,
  method 10), from a Wilson interval per arm. Wald's `d ± z·se` collapses when a rate is
  near 0 or 1 (complaint and opt-out rates are) and under-covers in small segments; the
  hybrid score keeps coverage near nominal across both at no cost. Wald and a percentile
  bootstrap are available for comparison (`method=`).
- **Test: the pooled two-proportion z-test.** Under "no lift" both arms share one rate, so
  pooling estimates the null variance exactly; its false-positive rate sits at alpha.
- **Power and planning: Cohen's h** (`2·asin√p1 - 2·asin√p0`) with the normal test, both
  tails counted: the arcsine transform stabilises the variance, and it is what
  statsmodels' `NormalIndPower` with `proportion_effectsize` computes, which the tests
  check the planner against.

Guardrails and segment effects are in `copilot.guardrails`.

>>> p = plan(0.10, 0.02, alpha=0.05, power=0.8, holdout=0.5)
>>> (p.treated, p.holdout)
(3835, 3835)
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict

from copilot.errors import CopilotError

_Z = NormalDist()
Method = Literal["newcombe", "wald", "bootstrap"]


class ExperimentError(CopilotError):
    """An experiment computation was asked something it cannot answer; the message says why."""

    code = "experiment.invalid"


class Arm(BaseModel):
    """One arm's subjects and how many of them had the outcome."""

    model_config = ConfigDict(frozen=True)

    n: int
    successes: int

    @property
    def rate(self) -> float:
        """successes ÷ n (0 for an empty arm)."""
        return self.successes / self.n if self.n else 0.0


def arm(successes: int, n: int) -> Arm:
    """An Arm, refusing impossible counts."""
    if n < 0 or successes < 0 or successes > n:
        raise ExperimentError(f"an arm needs 0 ≤ successes ≤ n, got {successes} of {n}")
    return Arm(n=n, successes=successes)


class Lift(BaseModel):
    """Treated minus holdout on one outcome, with its interval, test and detectable effect."""

    model_config = ConfigDict(frozen=True)

    treated: Arm
    holdout: Arm
    treated_rate: float
    holdout_rate: float
    difference: float  # treated rate - holdout rate, in rate units (0.02 = 2 points)
    relative: float | None  # difference ÷ holdout rate
    low: float
    high: float
    confidence: float
    method: Method
    p_value: float
    significant: bool  # p_value < alpha
    alpha: float
    power: float
    mde: float | None  # the smallest upward difference detectable at `power` with these sizes


def _z(alpha: float) -> float:
    return _Z.inv_cdf(1 - alpha / 2)


def check_alpha(alpha: float, power: float | None = None) -> None:
    """Refuse a significance level or power outside (0, 1) with `experiment.invalid`."""
    if not 0 < alpha < 1:
        raise ExperimentError(f"alpha must be between 0 and 1, got {alpha}")
    if power is not None and not 0 < power < 1:
        raise ExperimentError(f"power must be between 0 and 1, got {power}")


def wilson(successes: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for one proportion."""
    if n == 0:
        return 0.0, 1.0
    z = _z(alpha)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # Exact at the edges (floating point would leave 1e-17 above 0 for x = 0).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def newcombe(t: Arm, h: Arm, *, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the difference t - h."""
    lt, ut = wilson(t.successes, t.n, alpha=alpha)
    lh, uh = wilson(h.successes, h.n, alpha=alpha)
    d = t.rate - h.rate
    low = d - math.sqrt((t.rate - lt) ** 2 + (uh - h.rate) ** 2)
    high = d + math.sqrt((ut - t.rate) ** 2 + (h.rate - lh) ** 2)
    return low, high


def wald(t: Arm, h: Arm, *, alpha: float = 0.05) -> tuple[float, float]:
    """The textbook interval d ± z·se (unpooled); poor near 0 or 1 and in small samples."""
    d = t.rate - h.rate
    se = math.sqrt(t.rate * (1 - t.rate) / t.n + h.rate * (1 - h.rate) / h.n)
    return d - _z(alpha) * se, d + _z(alpha) * se


def bootstrap(
    t: Arm, h: Arm, *, alpha: float = 0.05, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap of the difference, resampling subjects within each arm (seeded)."""
    if resamples < 100:
        raise ExperimentError(f"a bootstrap needs at least 100 resamples, got {resamples}")
    rng = random.Random(seed)
    # Resampling n binary outcomes with replacement is a Binomial(n, p̂) draw.
    diffs = sorted(
        _binomial(rng, t.n, t.rate) / t.n - _binomial(rng, h.n, h.rate) / h.n
        for _ in range(resamples)
    )
    lo = diffs[max(0, math.floor(alpha / 2 * resamples))]
    hi = diffs[min(resamples - 1, math.ceil((1 - alpha / 2) * resamples) - 1)]
    return lo, hi


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """One Binomial(n, p) draw by inversion, enumerating outcomes outward from the mode.

    Any fixed enumeration order gives an exact sample; starting at the mode takes about
    √(npq) steps instead of np.
    """
    if p <= 0 or n == 0:
        return 0
    if p >= 1:
        return n
    mode = min(n, math.floor((n + 1) * p))
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(mode + 1)
        - math.lgamma(n - mode + 1)
        + mode * math.log(p)
        + (n - mode) * math.log1p(-p)
    )
    pmf_up = pmf_down = math.exp(log_pmf)
    u = rng.random() - pmf_up
    up = down = mode
    ratio = p / (1 - p)
    while u > 0 and (up < n or down > 0):
        if up < n:
            pmf_up *= (n - up) / (up + 1) * ratio
            up += 1
            u -= pmf_up
            if u <= 0:
                return up
        if down > 0:
            pmf_down *= down / (n - down + 1) / ratio
            down -= 1
            u -= pmf_down
            if u <= 0:
                return down
    return mode  # rounding left a sliver of probability unassigned


def z_test(t: Arm, h: Arm) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of t's rate = h's rate."""
    pooled = (t.successes + h.successes) / (t.n + h.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / t.n + 1 / h.n))
    if se == 0:
        return 1.0
    return 2 * _Z.cdf(-abs(t.rate - h.rate) / se)


def lift(
    treated: Arm,
    holdout: Arm,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    method: Method = "newcombe",
    resamples: int = 2000,
    seed: int = 0,
) -> Lift:
    """Treated vs holdout on a binary outcome: difference, interval, p-value, MDE.

    >>> r = lift(arm(120, 1000), arm(100, 1000))
    >>> round(r.difference, 3), r.significant
    (0.02, False)
    """
    check_alpha(alpha, power)
    if treated.n == 0 or holdout.n == 0:
        raise ExperimentError(
            f"lift needs subjects in both arms (treated {treated.n}, holdout {holdout.n})",
            code="experiment.empty_arm",
        )
    if method == "newcombe":
        low, high = newcombe(treated, holdout, alpha=alpha)
    elif method == "wald":
        low, high = wald(treated, holdout, alpha=alpha)
    elif method == "bootstrap":
        low, high = bootstrap(treated, holdout, alpha=alpha, resamples=resamples, seed=seed)
    else:
        raise ExperimentError(
            f"unknown interval method {method!r}; use newcombe, wald or bootstrap"
        )
    d = treated.rate - holdout.rate
    p = z_test(treated, holdout)
    return Lift(
        treated=treated,
        holdout=holdout,
        treated_rate=treated.rate,
        holdout_rate=holdout.rate,
        difference=d,
        relative=d / holdout.rate if holdout.rate else None,
        low=low,
        high=high,
        confidence=1 - alpha,
        method=method,
        p_value=p,
        significant=p < alpha,
        alpha=alpha,
        power=power,
        mde=mde(holdout.rate, treated.n, holdout.n, alpha=alpha, power=power),
    )


# -- power and planning -----------------------------------------------------------------------


def cohens_h(p1: float, p0: float) -> float:
    """Cohen's effect size for two proportions: 2·asin√p1 - 2·asin√p0."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))


def power_of(h: float, n_treated: float, n_holdout: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided normal test to detect effect size `h` with these arm sizes."""
    n_eff = 1 / (1 / n_treated + 1 / n_holdout)
    d = abs(h) * math.sqrt(n_eff)
    z = _z(alpha)
    return _Z.cdf(d - z) + _Z.cdf(-d - z)


def _standardized_for_power(alpha: float, power: float) -> float:
    """The h·√n_eff at which the two-sided test reaches `power`, both tails counted.

    Power depends on the effect and the sizes only through d = |h|·√n_eff, so one root
    serves both questions: the MDE at given sizes, and the sizes for a given effect.
    """
    z = _z(alpha)
    lo, hi = 0.0, z + _Z.inv_cdf(power) + 1.0  # the one-tail closed form is a lower bound
    for _ in range(100):  # bisection: power rises monotonically with d
        mid = (lo + hi) / 2
        if _Z.cdf(mid - z) + _Z.cdf(-mid - z) < power:
            lo = mid
        else:
            hi = mid
    return hi


def mde(
    baseline: float,
    n_treated: int,
    n_holdout: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float | None:
    """Smallest upward difference over `baseline` detectable with these sizes (None: none is)."""
    check_alpha(alpha, power)
    if n_treated <= 0 or n_holdout <= 0 or not 0 <= baseline < 1:
        return None
    h = _standardized_for_power(alpha, power) * math.sqrt(1 / n_treated + 1 / n_holdout)
    angle = math.asin(math.sqrt(baseline)) + h / 2
    if angle >= math.pi / 2:
        return None
    return math.sin(angle) ** 2 - baseline


class Plan(BaseModel):
    """How many subjects an experiment needs, and how long collecting them takes."""

    model_config = ConfigDict(frozen=True)

    baseline: float
    mde: float
    target: float
    alpha: float
    power: float
    holdout_fraction: float
    effect_size: float  # Cohen's h
    treated: int
    holdout: int
    total: int
    daily: float | None  # eligible subjects per day
    days: float | None


def plan(
    baseline: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    holdout: float = 0.1,
    daily: float | None = None,
) -> Plan:
    """Subjects per arm (and days) to detect an absolute change `mde` from `baseline`.

    `holdout` is the share of subjects held out; the holdout arm is the smaller one by
    default, which costs sample size: the total is smallest at 0.5.
    """
    check_alpha(alpha, power)
    if not 0 < baseline < 1:
        raise ExperimentError(f"baseline must be a rate strictly between 0 and 1, got {baseline}")
    target = baseline + mde
    if mde == 0 or not 0 < target < 1:
        raise ExperimentError(
            f"baseline + mde must be a rate strictly between 0 and 1 and differ from the "
            f"baseline, got {baseline} + {mde}"
        )
    if not 0 < holdout < 1:
        raise ExperimentError(f"holdout must be a fraction between 0 and 1, got {holdout}")
    if daily is not None and daily <= 0:
        raise ExperimentError(f"daily must be a positive number of subjects, got {daily}")
    h = cohens_h(target, baseline)
    n_eff = (_standardized_for_power(alpha, power) / h) ** 2  # 1 / (1/n_treated + 1/n_holdout)
    ratio = holdout / (1 - holdout)  # holdout subjects per treated subject
    n_treated = n_eff * (1 + ratio) / ratio
    treated, held = math.ceil(n_treated - 1e-9), math.ceil(n_treated * ratio - 1e-9)
    total = treated + held
    return Plan(
        baseline=baseline,
        mde=mde,
        target=target,
        alpha=alpha,
        power=power,
        holdout_fraction=holdout,
        effect_size=h,
        treated=treated,
        holdout=held,
        total=total,
        daily=daily,
        days=total / daily if daily else None,
    )
