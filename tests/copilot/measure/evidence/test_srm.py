"""Sample-ratio mismatch: few false alarms on a true split, a 52/48 skew caught, p equal to scipy's.

Seeded, vectorised: every trial is one row of a counts array the check takes whole.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chisquare

from copilot.measure.evidence.srm import (
    THRESHOLD,
    check_ratio,
    chi2_sf,
    chi_square,
    sequential_log_bf,
)
from copilot.measure.experiments import ExperimentError


def two_arms(seed: int, trials: int, n: int, share: float) -> np.ndarray:
    a = np.random.default_rng(seed).binomial(n, share, trials)
    return np.stack([a, n - a], axis=1)


def test_a_true_50_50_split_raises_at_most_half_a_percent_of_false_alarms() -> None:
    # Given 2,000 experiments of 20,000 subjects each, truly split 50/50
    counts = two_arms(1, 2000, 20_000, 0.5)
    # When each is checked at p < 0.001
    _, p = chi_square(counts, [0.5, 0.5])
    rate = float((p < THRESHOLD).mean())
    print(f"SRM false alarms on a true 50/50 split: {rate:.2%} of 2,000")
    # Then at most 0.5% are flagged (expected 0.1%)
    assert rate <= 0.005


def test_a_52_48_skew_at_20000_subjects_is_flagged_at_least_95_percent_of_the_time() -> None:
    counts = two_arms(2, 2000, 20_000, 0.52)
    _, p = chi_square(counts, [0.5, 0.5])
    rate = float((p < THRESHOLD).mean())
    print(f"SRM detection of a 52/48 skew at 20,000 subjects: {rate:.2%} of 2,000")
    assert rate >= 0.95


@pytest.mark.parametrize(
    "shares", [[0.5, 0.5], [0.9, 0.1], [0.2, 0.3, 0.5], [0.25] * 4, [0.1] * 10]
)
def test_the_p_value_equals_scipy_chisquare_on_the_same_counts(shares: list[float]) -> None:
    rng = np.random.default_rng(3)
    for n in (40, 1_000, 20_000, 1_000_000):
        skews = rng.dirichlet([200.0 * s for s in shares], size=20)
        counts = np.array([rng.multinomial(n, skew) for skew in skews])
        stat, p = chi_square(counts, shares)
        ref = chisquare(counts, f_exp=np.array(shares) * n, axis=1)
        np.testing.assert_allclose(stat, ref.statistic, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p, ref.pvalue, rtol=1e-7, atol=1e-300)


def test_the_survival_function_is_exact_at_known_points() -> None:
    # χ²₁ at 3.841459 is the 5% point; χ²₂'s survival is exp(−x/2)
    assert float(chi2_sf(3.841458820694124, 1)) == pytest.approx(0.05, rel=1e-9)
    assert float(chi2_sf(7.0, 2)) == pytest.approx(math.exp(-3.5), rel=1e-12)


def test_daily_looks_inflate_repeated_chi_square_but_not_the_sequential_test() -> None:
    # Given 2,000 true-50/50 experiments of 700 subjects a day, checked every day for 30 days
    rng = np.random.default_rng(4)
    daily = rng.binomial(700, 0.5, (2000, 30))
    treated = daily.cumsum(axis=1)
    counts = np.stack([treated, 700 * np.arange(1, 31) - treated], axis=2)
    _, p = chi_square(counts, [0.5, 0.5])
    repeated = float((p < THRESHOLD).any(axis=1).mean())
    log_bf = sequential_log_bf(counts, [0.5, 0.5])
    sequential = float((log_bf > math.log(1 / THRESHOLD)).any(axis=1).mean())
    print(f"SRM over 30 daily looks: repeated χ² {repeated:.2%}, sequential {sequential:.2%}")
    # Then the sequential test keeps its 0.1% bound over all the looks (0.5% allows noise)
    assert sequential <= 0.005
    # And it still catches a 52/48 skew by day 30 (21,000 subjects)
    skewed = rng.binomial(700, 0.52, (500, 30)).cumsum(axis=1)
    bad = np.stack([skewed, 700 * np.arange(1, 31) - skewed], axis=2)
    caught = float(
        (sequential_log_bf(bad, [0.5, 0.5]) > math.log(1 / THRESHOLD)).any(axis=1).mean()
    )
    print(f"sequential SRM catches 52/48 by day 30: {caught:.2%}")
    assert caught >= 0.8


def test_a_mismatch_names_its_likely_causes_and_a_clean_split_none() -> None:
    bad = check_ratio([10_400, 9_600], [0.5, 0.5], arms=["treated", "holdout"])
    assert bad.mismatch and bad.p_value < 1e-6 and bad.causes
    assert any("holdout share or salt" in c for c in bad.causes)
    good = check_ratio([9_010, 990], [0.9, 0.1], arms=["treated", "holdout"])
    assert not good.mismatch and good.causes == []


@pytest.mark.parametrize("shares", [[0.5], [0.6, 0.6], [1.2, -0.2], [0.0, 1.0]])
def test_a_bad_allocation_is_refused(shares: list[float]) -> None:
    with pytest.raises(ExperimentError) as e:
        chi_square([10] * len(shares), shares)
    assert e.value.code == "experiment.invalid"
