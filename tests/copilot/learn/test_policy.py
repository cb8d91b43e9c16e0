"""The learned policy: exploration floor, eligibility, rules fallback, explanations, regret."""

from __future__ import annotations

import numpy as np
import pytest

from copilot.learn.errors import NotEnoughDataError
from copilot.learn.model import empty_artifact
from copilot.learn.policy import LearnedPolicy, igw
from copilot.learn.train import TrainConfig, train
from copilot.ranking import Candidate, PolicyInput, RankingPolicy, RulesPolicy
from tests.support.simulator import (
    CANDIDATES,
    SEGMENTS,
    Simulator,
    candidates,
    logged,
    play_learning,
)


def _trained(seed: int = 3, n: int = 4000) -> LearnedPolicy:
    sim = Simulator(seed)
    ctx = sim.contexts(n)
    chosen = sim.rng.choice(len(CANDIDATES), size=n)
    reward = sim.joined(ctx, chosen)
    data = logged(ctx, chosen, np.full(n, 0.25), reward)
    return LearnedPolicy(train(data, surface="onboarding", window=(0.0, n * 10.0)))


def _ask(features: dict[str, object], eligible: list[Candidate] | None = None,
         level: str = "full") -> PolicyInput:  # fmt: skip
    return PolicyInput(surface="onboarding", subject_id="s1", features=features,  # type: ignore[arg-type]
                       eligible=candidates() if eligible is None else eligible, level=level)  # fmt: skip


AGENCY = {"segment": "agency", "usage": 0.0, "seats": 0.0, "mobile": False}


def test_inverse_gap_weighting_matches_its_closed_form() -> None:
    # K = 3, gamma = 10, scores 0.5, 0.3, 0.1: p = 1/(3 + 10·0.2) = 0.2, 1/(3 + 10·0.4) = 1/7,
    # the best takes the rest; a floor of 0.05 mixes in as (1 - 3·0.05)·p + 0.05.
    p = np.array(igw([0.5, 0.3, 0.1], 10.0, 0.0))
    assert p.tolist() == pytest.approx([1 - 0.2 - 1 / 7, 0.2, 1 / 7])
    floored = igw([0.5, 0.3, 0.1], 10.0, 0.05)
    assert floored == pytest.approx((0.85 * p + 0.05).tolist())


def test_every_eligible_candidate_keeps_the_floor_and_nothing_else_is_picked() -> None:
    policy = _trained()
    assert isinstance(policy, RankingPolicy)
    eligible = [c for c in candidates() if c.id != "webinar"]  # the rules removed webinar
    picks = set()
    for draw in np.linspace(0, 0.999, 200):
        choice = policy.choose(_ask(AGENCY, eligible), float(draw))
        assert set(choice.distribution) == {c.id for c in eligible}
        assert min(choice.distribution.values()) >= policy.artifact.floor - 1e-12
        assert sum(choice.distribution.values()) == pytest.approx(1.0)
        assert choice.probability == choice.distribution[choice.candidate_id or ""]
        picks.add(choice.candidate_id)
    assert "webinar" not in picks and len(picks) == 3


def test_the_learned_policy_prefers_what_the_segment_prefers_and_says_why() -> None:
    policy = _trained()
    choice = policy.choose(_ask(AGENCY), 0.5)
    assert max(choice.distribution, key=lambda c: choice.distribution[c]) == "webinar"
    assert choice.reason.startswith("highest predicted reward")
    assert choice.contributions and "segment=agency" in [c.feature for c in choice.contributions]
    # The same draw gives the same pick (a replay decides alike).
    assert policy.choose(_ask(AGENCY), 0.5) == choice


def test_thin_context_is_decided_by_the_rules_without_exploring() -> None:
    policy = _trained()
    choice = policy.choose(_ask(AGENCY, level="thin"), 0.99)
    assert choice.candidate_id == RulesPolicy().choose(_ask(AGENCY), 0).candidate_id
    assert choice.probability == 1.0
    assert "thin" in choice.reason


def test_a_candidate_without_evidence_lets_the_rules_lead_with_the_floor_kept() -> None:
    policy = _trained()
    newcomer = Candidate(id="walkthrough", priority=5)
    eligible = [*candidates(), newcomer]
    choice = policy.choose(_ask(AGENCY, eligible), 0.5)
    assert choice.candidate_id == "walkthrough"  # the rules' pick (highest priority) leads
    assert "not enough evidence" in choice.reason
    assert min(choice.distribution.values()) == pytest.approx(policy.artifact.floor)
    # Before any training there are no models at all: the same fallback.
    first = LearnedPolicy(empty_artifact("onboarding", 0.05)).choose(_ask(AGENCY), 0.99)
    assert first.distribution["checklist"] == pytest.approx(1 - 3 * 0.05)


def test_no_eligible_candidate_is_no_pick() -> None:
    choice = _trained().choose(_ask(AGENCY, []), 0.3)
    assert choice.candidate_id is None


def test_training_is_reproducible_and_refuses_too_little_data() -> None:
    a, b = _trained(seed=4).artifact, _trained(seed=4).artifact
    assert a.to_json() == b.to_json() and a.hash() == b.hash()
    assert _trained(seed=5).artifact.hash() != a.hash()
    with pytest.raises(NotEnoughDataError) as err:
        train([], surface="onboarding", window=(0.0, 1.0))
    assert err.value.code == "learn.not_enough_data"


def test_over_20000_decisions_regret_is_at_most_half_the_rules_and_no_segment_loses() -> None:
    """The learning loop against the seeded world, rewards delayed and joined, retrained."""
    n = 20_000
    played = play_learning(11, n, config=TrainConfig(gamma_scale=3.0))
    rules = np.zeros(n, np.int64)  # the rules always pick checklist (highest priority)
    assert played.regret() <= 0.5 * played.regret(rules), (played.regret(), played.regret(rules))
    rows = np.arange(n)
    gain = played.expected[rows, played.chosen] - played.expected[rows, rules]
    for g, name in enumerate(SEGMENTS):
        mine = gain[played.contexts.segment == g]
        half = 1.96 * mine.std(ddof=1) / np.sqrt(mine.size)
        assert mine.mean() >= -half, (name, mine.mean(), half)
