"""The statistics behave as stated: intervals cover, tests hold their size, the planner agrees with statsmodels.

Seeded simulations, so every figure is reproducible; each tolerance is justified where it
is set. The 200-trial coverage test on the report's own per-subject path is in
`test_report.py`.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from copilot.measure.experiments import (
    ExperimentError,
    _binomial,
    arm,
    bootstrap,
    lift,
    mde,
    newcombe,
    plan,
    power_of,
    wald,
    wilson,
)


def draws(seed: int, trials: int, n: int, p: float) -> list[int]:
    return [int(x) for x in np.random.default_rng(seed).binomial(n, p, trials)]


def test_the_interval_covers_a_known_lift_and_the_estimate_is_unbiased() -> None:
    # Given 200 seeded experiments with a true lift of 3 points (13% vs 10%)
    truth, nt, nh = 0.03, 3000, 1000
    results = [
        lift(arm(a, nt), arm(b, nh))
        for a, b in zip(draws(1, 200, nt, 0.13), draws(2, 200, nh, 0.10), strict=True)
    ]
    # Then the 95% interval covers the truth in at least 90% of them (expected 95%; 90% is
    # 3.2 binomial standard deviations, √(200·0.05·0.95) = 3.1 trials, below that)
    covered = sum(r.low <= truth <= r.high for r in results) / len(results)
    assert covered >= 0.90, covered
    # And the mean estimate is within 3 standard errors of the truth
    estimates = [r.difference for r in results]
    se = statistics.stdev(estimates) / math.sqrt(len(estimates))
    assert abs(statistics.mean(estimates) - truth) < 3 * se


def test_with_no_lift_significance_is_flagged_at_the_nominal_alpha() -> None:
    # 4000 trials: the false-positive rate's binomial sd is √(0.05·0.95/4000) = 0.34 points,
    # so ±1 point is ±3 sd around 5%.
    trials, alpha = 4000, 0.05
    pairs = zip(draws(3, trials, 2000, 0.2), draws(4, trials, 2000, 0.2), strict=True)
    results = [lift(arm(a, 2000), arm(b, 2000), alpha=alpha) for a, b in pairs]
    flagged = sum(r.significant for r in results) / trials
    assert abs(flagged - alpha) < 0.01, flagged
    excluded = sum(not (r.low <= 0 <= r.high) for r in results) / trials
    assert abs(excluded - alpha) < 0.01, excluded  # the interval and the test agree


def test_newcombe_keeps_coverage_where_wald_collapses_on_rare_events() -> None:
    # 1% complaint rates, a 100-subject holdout: Wald's interval is often [0, 0] for the holdout.
    t, h = draws(5, 2000, 900, 0.01), draws(6, 2000, 100, 0.01)
    pairs = [(arm(a, 900), arm(b, 100)) for a, b in zip(t, h, strict=True)]
    newc = sum(lo <= 0 <= hi for lo, hi in (newcombe(a, b) for a, b in pairs)) / 2000
    wal = sum(lo <= 0 <= hi for lo, hi in (wald(a, b) for a, b in pairs)) / 2000
    assert newc >= 0.94 and wal < 0.75, (newc, wal)


def test_the_bootstrap_interval_covers_too() -> None:
    t, h = draws(7, 100, 3000, 0.13), draws(8, 100, 1000, 0.10)
    covered = sum(
        lo <= 0.03 <= hi
        for i, (a, b) in enumerate(zip(t, h, strict=True))
        for lo, hi in [bootstrap(arm(a, 3000), arm(b, 1000), resamples=1000, seed=i)]
    )
    assert covered >= 88  # expected 95 of 100; sd 2.2
    r = lift(arm(390, 3000), arm(100, 1000), method="bootstrap", seed=1)
    n = lift(arm(390, 3000), arm(100, 1000))
    assert r.method == "bootstrap" and abs(r.low - n.low) < 0.01 and abs(r.high - n.high) < 0.01


def test_the_binomial_sampler_has_the_right_moments() -> None:
    import random

    rng = random.Random(0)
    for n, p in [(1000, 0.3), (50, 0.02), (7, 0.9), (1, 0.5), (10_000, 0.001)]:
        xs = [_binomial(rng, n, p) for _ in range(20_000)]
        assert abs(statistics.mean(xs) - n * p) < 4 * math.sqrt(n * p * (1 - p) / 20_000)
        assert abs(statistics.variance(xs) / (n * p * (1 - p)) - 1) < 0.05
    assert _binomial(rng, 10, 0.0) == 0 and _binomial(rng, 10, 1.0) == 10


GRID = [
    (baseline, d, holdout, alpha, power)
    for baseline in (0.02, 0.10, 0.30, 0.50, 0.85)
    for d in (0.01, 0.05, -0.01)
    for holdout in (0.1, 0.2, 0.5)
    for alpha in (0.01, 0.05, 0.10)
    for power in (0.8, 0.9)
    if 0 < baseline + d < 1
]


@pytest.mark.parametrize("baseline,d,holdout,alpha,power", GRID)
def test_the_planner_matches_statsmodels_within_one_percent(
    baseline: float, d: float, holdout: float, alpha: float, power: float
) -> None:
    ours = plan(baseline, d, alpha=alpha, power=power, holdout=holdout)
    h = proportion_effectsize(baseline + d, baseline)
    ratio = holdout / (1 - holdout)
    theirs = NormalIndPower().solve_power(
        effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    assert abs(ours.treated - theirs) / theirs < 0.01
    assert abs(ours.holdout - theirs * ratio) / (theirs * ratio) < 0.01
    assert ours.total == ours.treated + ours.holdout


def test_a_plan_says_how_long_collecting_takes() -> None:
    p = plan(0.10, 0.02, holdout=0.1, daily=500)
    assert (p.treated, p.holdout) == (19173, 2131)
    assert p.days == pytest.approx(p.total / 500)
    assert plan(0.10, 0.02).days is None


@settings(max_examples=60, deadline=None)
@given(
    baseline=st.floats(0.01, 0.9),
    n_treated=st.integers(50, 200_000),
    holdout=st.sampled_from([0.05, 0.1, 0.2, 0.5]),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
    power=st.sampled_from([0.7, 0.8, 0.9]),
)
def test_the_mde_and_the_planner_are_inverses(
    baseline: float, n_treated: int, holdout: float, alpha: float, power: float
) -> None:
    n_holdout = max(1, round(n_treated * holdout / (1 - holdout)))
    effect = mde(baseline, n_treated, n_holdout, alpha=alpha, power=power)
    if effect is None:  # no upward effect is detectable with so few subjects
        return
    h = 2 * math.asin(math.sqrt(baseline + effect)) - 2 * math.asin(math.sqrt(baseline))
    assert power_of(h, n_treated, n_holdout, alpha=alpha) == pytest.approx(power, abs=1e-6)
    if baseline + effect < 0.999 and effect > 1e-4:
        actual = n_holdout / (n_treated + n_holdout)  # the split after rounding
        again = plan(baseline, effect, alpha=alpha, power=power, holdout=actual)
        assert again.total == pytest.approx(n_treated + n_holdout, rel=0.01, abs=3)


def test_wilson_is_inside_zero_one_and_contains_the_estimate() -> None:
    for x, n in [(0, 10), (10, 10), (3, 7), (500, 1000)]:
        lo, hi = wilson(x, n)
        assert 0 <= lo <= x / n <= hi <= 1


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda: plan(0, 0.01), "experiment.invalid"),
        (lambda: plan(0.5, 0.6), "experiment.invalid"),
        (lambda: plan(0.5, 0.0), "experiment.invalid"),
        (lambda: plan(0.5, 0.1, holdout=1.0), "experiment.invalid"),
        (lambda: plan(0.5, 0.1, alpha=0), "experiment.invalid"),
        (lambda: plan(0.5, 0.1, power=1.5), "experiment.invalid"),
        (lambda: plan(0.5, 0.1, daily=0), "experiment.invalid"),
        (lambda: arm(5, 3), "experiment.invalid"),
        (lambda: lift(arm(0, 0), arm(1, 10)), "experiment.empty_arm"),
        (lambda: lift(arm(1, 10), arm(1, 10), method="magic"), "experiment.invalid"),  # type: ignore[arg-type]
        (lambda: bootstrap(arm(1, 10), arm(1, 10), resamples=10), "experiment.invalid"),
    ],
)
def test_bad_questions_get_a_stable_code(call: object, code: str) -> None:
    with pytest.raises(ExperimentError) as info:
        call()  # type: ignore[operator]
    assert info.value.code == code
