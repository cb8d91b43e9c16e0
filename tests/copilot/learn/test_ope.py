"""Off-policy evaluation: hand-computed cases, diagnostics, the harm rule, and coverage."""

from __future__ import annotations

import numpy as np
import pytest

from copilot.learn.errors import EvaluationError
from copilot.learn.model import fit_ridge
from copilot.learn.ope import Logged, compare, estimate, evaluate, target_arrays
from tests.support.simulator import CANDIDATES, Contexts, Simulator


def test_ips_on_uniform_logging_matches_a_hand_computation_exactly() -> None:
    # Four candidates logged uniformly (mu = 1/4); the target is deterministic. Decisions
    # where the target agrees with the logged pick count 4·r, the others 0:
    # (4·1 + 4·0 + 4·1 + 0 + 0 + 4·0.5 + 0 + 4·1) / 8 = 14 / 8 = 1.75.
    agree = np.array([1, 1, 1, 0, 0, 1, 0, 1], dtype=float)
    reward = np.array([1, 0, 1, 1, 0, 0.5, 1, 1], dtype=float)
    data = Logged(propensity=np.full(8, 0.25), reward=reward, target=agree)
    est = estimate(data, "ips")
    assert est.value == 14 / 8
    assert est.max_weight == 4.0
    # Kish: (Σw)² / Σw² = (5·4)² / (5·16) = 5.
    assert est.ess == 5.0


def test_snips_and_dr_match_hand_computations() -> None:
    # Weights: 0.5/0.5 = 1, 0/0.25 = 0, 1/0.5 = 2. SNIPS = (1·1 + 0 + 2·0.5) / (1 + 0 + 2).
    data = Logged(
        propensity=np.array([0.5, 0.25, 0.5]),
        reward=np.array([1.0, 1.0, 0.5]),
        target=np.array([0.5, 0.0, 1.0]),
        q_logged=np.array([0.6, 0.2, 0.4]),
        q_target=np.array([0.7, 0.3, 0.4]),
    )
    found = evaluate(data)
    assert found["snips"].value == pytest.approx(2 / 3, abs=1e-15)
    # DR per row: q_target + w·(r - q_logged) = 0.7 + 0.4, 0.3 + 0, 0.4 + 2·0.1.
    assert found["dr"].value == pytest.approx((1.1 + 0.3 + 0.6) / 3, abs=1e-15)
    # IPS interval: sample sd of w·r = [1, 0, 1] over √3, times 1.959964.
    ips = found["ips"]
    half = 1.959963984540054 * np.std([1, 0, 1], ddof=1) / np.sqrt(3)
    assert (ips.low, ips.high) == pytest.approx((2 / 3 - half, 2 / 3 + half), abs=1e-12)


def test_support_is_the_target_mass_on_actions_the_logger_could_take() -> None:
    # The logger was deterministic (rules); the target puts 0.3 elsewhere on the first
    # decision and agrees on the second.
    target, support = target_arrays(
        ["a", "b"],
        [{"a": 0.7, "b": 0.3}, {"b": 1.0}],
        [{"a": 1.0}, {"b": 1.0}],
    )
    assert target.tolist() == [0.7, 1.0]
    assert support.tolist() == [0.7, 1.0]
    data = Logged(np.ones(2), np.ones(2), target, support=support)
    assert estimate(data, "snips").support == pytest.approx(0.85)


def test_bad_input_is_a_clear_error_with_a_code() -> None:
    with pytest.raises(EvaluationError) as err:
        Logged(propensity=np.array([0.0]), reward=np.array([1.0]), target=np.array([1.0]))
    assert err.value.code == "learn.bad_evaluation"
    with pytest.raises(EvaluationError, match="shape"):
        Logged(propensity=np.ones(2), reward=np.ones(3), target=np.ones(2))
    with pytest.raises(EvaluationError, match="reward model"):
        estimate(Logged(np.ones(2), np.ones(2), np.ones(2)), "dr")


def test_a_segment_whose_whole_interval_is_below_zero_is_harmed() -> None:
    # Everyone gains 0.2 under the candidate except a small segment that loses 0.5.
    rng = np.random.default_rng(5)
    n = 4000
    segment = np.where(np.arange(n) % 10 == 0, "small", "big")
    base = rng.random(n) < 0.5
    current_reward = base.astype(float)
    lift = np.where(segment == "small", -0.5, 0.2)
    ones = np.ones(n)
    current = Logged(ones, current_reward, ones, q_logged=np.full(n, 0.5),
                     q_target=np.full(n, 0.5), segment=segment)  # fmt: skip
    candidate = Logged(ones, current_reward + lift, ones, q_logged=np.full(n, 0.5),
                       q_target=np.full(n, 0.5), segment=segment)  # fmt: skip
    overall, segments = compare(candidate, current)
    assert overall.low > 0
    by = {s.segment: s for s in segments}
    assert by["small"].harmed and not by["big"].harmed
    assert by["small"].difference == pytest.approx(-0.5)


# -- coverage over seeded trials --------------------------------------------------------


def _design(ctx: Contexts) -> np.ndarray:
    return np.column_stack([np.ones(len(ctx)), ctx.usage, ctx.seats, ctx.mobile,
                            ctx.segment == 1, ctx.segment == 2]).astype(float)  # fmt: skip


def _target(ctx: Contexts) -> np.ndarray:
    """A fixed deterministic target: by segment, and by usage for the majority."""
    pick = np.where(ctx.usage > 0, CANDIDATES.index("tour"), CANDIDATES.index("checklist"))
    pick = np.where(ctx.segment == 1, CANDIDATES.index("webinar"), pick)
    pick = np.where(ctx.segment == 2, CANDIDATES.index("template"), pick)
    out = np.zeros((len(ctx), len(CANDIDATES)))
    out[np.arange(len(ctx)), pick] = 1.0
    return out


def test_snips_and_dr_intervals_cover_the_true_value_in_200_seeded_trials() -> None:
    """Logged by an exploring rules policy, evaluated for a fixed target; truth by Monte Carlo."""
    k = len(CANDIDATES)
    truth_ctx = Simulator(10_000).contexts(400_000)
    truth = float((Simulator.expected(truth_ctx) * _target(truth_ctx)).sum(1).mean())
    logging = np.full(k, 0.15)
    logging[0] = 1 - 0.15 * (k - 1)  # the rules' pick leads, every candidate keeps 0.15
    n, trials = 1500, 200
    covered = {"snips": 0, "dr": 0}
    for seed in range(trials):
        sim = Simulator(seed)
        ctx = sim.contexts(n)
        chosen = sim.rng.choice(k, size=n, p=logging)
        reward = sim.joined(ctx, chosen)
        target = _target(ctx)
        x = _design(ctx)
        q = np.zeros((n, k))
        fold = np.arange(n) % 2
        for f in (0, 1):
            w, _ = fit_ridge(x[fold != f], chosen[fold != f], reward[fold != f], k, 1.0)
            q[fold == f] = x[fold == f] @ w.T
        rows = np.arange(n)
        data = Logged(propensity=logging[chosen], reward=reward, target=target[rows, chosen],
                      q_logged=q[rows, chosen], q_target=(q * target).sum(1))  # fmt: skip
        for name, est in evaluate(data, estimators=("snips", "dr")).items():
            covered[name] += est.low <= truth <= est.high
    assert covered["snips"] / trials >= 0.90, covered
    assert covered["dr"] / trials >= 0.90, covered
