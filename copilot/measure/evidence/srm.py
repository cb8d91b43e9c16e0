"""Sample-ratio mismatch: are the arms the sizes the allocation says they should be?

A mismatch means assignment or logging is broken (a holdout decided after some filter, a
crash that loses one arm's exposures, a bot filter that reads the arm), and then no lift
computed from those arms can be trusted, however significant: it is a blocking warning.

Two tests, both over the counts per arm and the configured shares:

- **Pearson's χ² goodness of fit** at p < 0.001 (GrowthBook's and Optimizely's default),
  for one look at the data. The p-value is the χ² survival function with k−1 degrees of
  freedom, computed in closed form for integer degrees of freedom (equal to
  `scipy.stats.chisquare`, which the tests check).
- **A sequential test for daily looks**: the Dirichlet-multinomial Bayes factor of Lindon
  & Malek, "Anytime-Valid Inference for Multinomial Count Data" (NeurIPS 2022). Under the
  configured shares it is a nonnegative martingale, so by Ville's inequality the chance
  that it *ever* exceeds 1/α is at most α, however often one looks; repeating the χ² test
  every day would instead raise the false-alarm rate with every look.

Both take arrays: `counts` of shape (..., k) test many experiments (or days) at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from copilot.measure.experiments import ExperimentError

Array = npt.NDArray[np.float64]
THRESHOLD = 0.001
# The prior's total weight (Dirichlet α = CONCENTRATION · shares). Large enough that the
# mixture concentrates near the configured split, where mismatches of 1–2 points live.
CONCENTRATION = 1000.0
_erfc = np.frompyfunc(math.erfc, 1, 1)
_lgamma = np.frompyfunc(math.lgamma, 1, 1)

LIKELY_CAUSES = (
    "the arm is decided after a filter that depends on it (e.g. only treated runs are logged)",
    "runs of one arm fail or are skipped before they are recorded (consent, crashes, timeouts)",
    "the holdout share or salt changed during the experiment (COPILOT_HOLDOUTS, "
    "COPILOT_HOLDOUT_SALT): subjects were reshuffled",
    "bots or test accounts excluded from one arm only, or duplicated subject ids",
    "the configured allocation passed to the check is not the one that was running",
)


class SampleRatio(BaseModel):
    """One comparison's arm sizes against its allocation: both tests and what to suspect."""

    model_config = ConfigDict(frozen=True)

    arms: list[str]
    observed: list[int]
    expected_shares: list[float]
    statistic: float
    p_value: float
    threshold: float
    mismatch: bool  # p_value < threshold, or the sequential test confirmed one
    sequential_log_bf: float  # log of the Dirichlet-multinomial Bayes factor
    sequential_mismatch: bool  # the Bayes factor is past 1/threshold: safe at any look
    causes: list[str]


def _shares(shares: Sequence[float] | Array, k: int) -> Array:
    p = np.asarray(shares, dtype=np.float64)
    if p.shape[-1] != k or k < 2:
        raise ExperimentError(
            f"an allocation needs one share per arm (≥ 2), got {p.shape[-1]} for {k}"
        )
    if np.any(p <= 0) or not np.allclose(p.sum(axis=-1), 1.0, atol=1e-9):
        raise ExperimentError(f"allocation shares must be positive and sum to 1, got {p.tolist()}")
    return p


def chi2_sf(x: Array | float, df: int) -> Array:
    """P(χ²_df ≥ x) for an integer df ≥ 1, in closed form (the series for integer df)."""
    x = np.asarray(x, dtype=np.float64)
    half = x / 2
    if df % 2 == 0:
        term = np.exp(-half)
        total = term.copy()
        for i in range(1, df // 2):
            term = term * half / i
            total = total + term
        return np.minimum(total, 1.0)
    total = np.asarray(_erfc(np.sqrt(half)), dtype=np.float64)
    term = np.sqrt(x * 2 / math.pi) * np.exp(-half)
    for i in range(1, (df + 1) // 2):
        total = total + term
        term = term * x / (2 * i + 1)
    return np.minimum(total, 1.0)


def chi_square(counts: npt.ArrayLike, shares: Sequence[float] | Array) -> tuple[Array, Array]:
    """Pearson's statistic and p-value of `counts` (..., k) against `shares` (k)."""
    c = np.asarray(counts, dtype=np.float64)
    if np.any(c < 0):
        raise ExperimentError("arm counts cannot be negative")
    p = _shares(shares, c.shape[-1])
    n = c.sum(axis=-1, keepdims=True)
    expected = n * p
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = np.where(n[..., 0] > 0, ((c - expected) ** 2 / expected).sum(axis=-1), 0.0)
    return stat, chi2_sf(stat, c.shape[-1] - 1)


def sequential_log_bf(
    counts: npt.ArrayLike,
    shares: Sequence[float] | Array,
    *,
    concentration: float = CONCENTRATION,
) -> Array:
    """log Bayes factor of a Dirichlet(concentration·shares) mixture against the shares.

    Reject the allocation, at any look, when it exceeds log(1/α).
    """
    c = np.asarray(counts, dtype=np.float64)
    p = _shares(shares, c.shape[-1])
    a = concentration * p
    n = c.sum(axis=-1)
    log_mix = (
        math.lgamma(float(a.sum()))
        - np.asarray(_lgamma(a.sum() + n), dtype=np.float64)
        + (
            np.asarray(_lgamma(a + c), dtype=np.float64) - np.array([math.lgamma(v) for v in a])
        ).sum(axis=-1)
    )
    return np.asarray(log_mix - (c * np.log(p)).sum(axis=-1), dtype=np.float64)


def check_ratio(
    observed: Sequence[int],
    shares: Sequence[float],
    *,
    arms: Sequence[str] | None = None,
    threshold: float = THRESHOLD,
) -> SampleRatio:
    """Both tests on one comparison's arm sizes; the causes to look for when they fail."""
    if not 0 < threshold < 1:
        raise ExperimentError(f"the SRM threshold must be in (0, 1), got {threshold}")
    names = list(arms) if arms is not None else [f"arm{i}" for i in range(len(observed))]
    stat, p = chi_square(list(observed), shares)
    log_bf = float(sequential_log_bf(list(observed), shares))
    seq = log_bf > math.log(1 / threshold)
    mismatch = bool(p < threshold) or seq
    return SampleRatio(
        arms=names, observed=[int(o) for o in observed], expected_shares=[float(s) for s in shares],
        statistic=float(stat), p_value=float(p), threshold=threshold, mismatch=mismatch,
        sequential_log_bf=log_bf, sequential_mismatch=seq,
        causes=list(LIKELY_CAUSES) if mismatch else [],
    )  # fmt: skip
