"""The rules policy: priority class first, then declaration order, probability 1."""

from __future__ import annotations

import numpy as np
import pytest

from copilot.ranking import Candidate, Choice, PolicyInput, RankingPolicy, RulesPolicy


def _ask(*cands: Candidate) -> PolicyInput:
    return PolicyInput(surface="onboarding.next_step", subject_id="s1", features={}, eligible=cands)


def test_the_rules_pick_the_highest_priority_then_the_first_declared() -> None:
    policy = RulesPolicy()
    assert isinstance(policy, RankingPolicy)
    pick = policy.choose(_ask(Candidate(id="a", order=0), Candidate(id="b", priority=1, order=1),
                              Candidate(id="c", priority=1, order=2)), 0.7)  # fmt: skip
    assert (pick.candidate_id, pick.probability, dict(pick.distribution)) == ("b", 1.0, {"b": 1.0})


def test_nothing_eligible_is_a_choice_of_none_with_a_reason() -> None:
    pick = RulesPolicy().choose(_ask(), 0.1)
    assert pick.candidate_id is None and pick.reason == "no eligible candidate"


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1, True, "0.5", None])
def test_a_choice_refuses_a_probability_off_policy_evaluation_cannot_divide_by(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        Choice(candidate_id="a", probability=bad, policy="p", version="1")  # type: ignore[arg-type]


def test_a_choice_is_frozen_and_takes_an_integer_probability_as_float() -> None:
    c = Choice(candidate_id="a", probability=1, policy="p", version="1")
    assert c.probability == 1.0 and type(c.probability) is float
    with pytest.raises(AttributeError):
        c.probability = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("bad", [{"policy": 1}, {"version": None}, {"candidate_id": 3}])
def test_a_choice_with_a_non_text_policy_or_version_is_refused(bad: dict[str, object]) -> None:
    args: dict[str, object] = {"candidate_id": "a", "probability": 0.5, "policy": "x",
                               "version": "1", **bad}  # fmt: skip
    with pytest.raises(TypeError):
        Choice(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [np.float32(0.5), np.int64(1)])
def test_a_numpy_probability_is_taken_as_a_float(p: object) -> None:
    c = Choice(candidate_id="a", probability=p, policy="x", version="1")  # type: ignore[arg-type]
    assert type(c.probability) is float and c.probability == float(p)  # type: ignore[arg-type]
