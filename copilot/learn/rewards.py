"""Rewards: feedback joined to logged decisions by id within a declared window, with a default.

Sources, fast to slow: a reviewer's decision on the proposal (approve; edit, weighted by
the edit distance `copilot.measure.feedback` computes; reject, valued by the reason's
category), placement events (accept, complete; dismiss counts against), declared outcomes.
Guardrail events are constraints, not rewards: they are counted beside the reward and a
breach demotes the policy (`copilot.learn.gate`), but they never enter the regression.

Within a window the most trusted source wins (outcome over reviewer over placement) and,
within it, the latest event. A decision's reward is final when a terminal event arrived
(any reviewer decision or outcome, a placement's complete or dismiss) or its window
closed; until then it is pending and training leaves it out. A closed window with nothing
in it gives the declared default.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from copilot.measure.feedback import reason_category
from copilot.ranking import LoggedDecision

Source = Literal["reviewer", "placement", "outcome", "guardrail"]
PRECEDENCE: dict[str, int] = {"outcome": 3, "reviewer": 2, "placement": 1}
TERMINAL_PLACEMENT = frozenset({"complete", "dismiss"})


class Feedback(BaseModel):
    """One piece of feedback about one decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)
    source: Source
    event: str = Field(min_length=1, max_length=100)  # approve|edit|reject, accept|…, a name
    at: float
    edit_distance: float | None = Field(default=None, ge=0, le=1)
    reason: str | None = Field(default=None, max_length=2000)
    value: float | None = None  # a declared outcome's value, when it carries one


class RewardSpec(BaseModel):
    """What each kind of feedback is worth, the window, and the default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: float = Field(default=7 * 86400.0, gt=0, description="seconds after the decision")
    default: float = 0.0
    approve: float = 1.0
    # A reject by reason category; categories not listed are worth `reject_default`.
    reject: dict[str, float] = Field(default_factory=lambda: {"timing": 0.2})
    reject_default: float = 0.0
    placement: dict[str, float] = Field(
        default_factory=lambda: {"accept": 0.5, "complete": 1.0, "dismiss": -1.0}
    )
    outcomes: dict[str, float] = Field(default_factory=dict)  # declared outcome name -> reward

    def value(self, fb: Feedback) -> float | None:
        """The reward one piece of feedback stands for (None: it carries no reward)."""
        if fb.source == "reviewer":
            if fb.event == "approve":
                return self.approve
            if fb.event == "edit":
                return self.approve * (1.0 - (fb.edit_distance or 0.0))
            category = reason_category(fb.reason) or "other"
            return self.reject.get(category, self.reject_default)
        if fb.source == "placement":
            return self.placement.get(fb.event)
        if fb.source == "outcome":
            return fb.value if fb.value is not None else self.outcomes.get(fb.event)
        return None  # guardrails are constraints


@dataclass(frozen=True)
class Joined:
    """A decision with its reward (None while pending) and the guardrail events it drew."""

    decision: LoggedDecision
    final: bool
    guardrails: tuple[str, ...] = ()


class DecisionLog(Protocol):
    """Where logged decisions and their feedback are read from (the adapter point).

    `copilot.learn.store.LearnStore` implements it on the learning wing's own tables; the
    placements wing's decision log implements the same two methods.
    """

    def decisions(
        self, tenant: str, surface: str, since: float, until: float
    ) -> Sequence[LoggedDecision]: ...

    def feedback(self, tenant: str, decision_ids: Sequence[str]) -> Sequence[Feedback]: ...


def _terminal(fb: Feedback) -> bool:
    if fb.source == "placement":
        return fb.event in TERMINAL_PLACEMENT
    return fb.source in ("reviewer", "outcome")


def join(
    decisions: Iterable[LoggedDecision],
    feedback: Iterable[Feedback],
    spec: RewardSpec,
    *,
    now: float,
) -> list[Joined]:
    """Each decision with its reward as of ``now`` (see the module docstring)."""
    by_decision: dict[str, list[Feedback]] = defaultdict(list)
    for fb in feedback:
        by_decision[fb.decision_id].append(fb)
    out = []
    for d in decisions:
        closes = d.decided_at + spec.window
        seen = [f for f in by_decision.get(d.decision_id, ()) if d.decided_at <= f.at <= closes
                and f.at <= now]  # fmt: skip
        rewards = [(PRECEDENCE[f.source], f.at, v) for f in seen
                   if f.source in PRECEDENCE and (v := spec.value(f)) is not None]  # fmt: skip
        final = now >= closes or any(_terminal(f) for f in seen)
        reward = max(rewards)[2] if rewards else (spec.default if final else None)
        # model_construct: `d` is validated already and a float reward keeps it valid.
        record = dict(d.__dict__, reward=reward if final else None)
        out.append(Joined(
            decision=LoggedDecision.model_construct(**record),
            final=final,
            guardrails=tuple(sorted(f.event for f in seen if f.source == "guardrail")),
        ))  # fmt: skip
    return out


def rewards_of(joined: Iterable[Joined]) -> list[LoggedDecision]:
    """The final decisions, reward set: what training and evaluation read."""
    return [j.decision for j in joined if j.final]


def guardrail_counts(joined: Iterable[Joined]) -> Mapping[str, int]:
    """How many decisions drew each guardrail event."""
    counts: dict[str, int] = defaultdict(int)
    for j in joined:
        for g in set(j.guardrails):
            counts[g] += 1
    return dict(counts)


__all__ = [
    "DecisionLog",
    "Feedback",
    "Joined",
    "RewardSpec",
    "Source",
    "guardrail_counts",
    "join",
    "rewards_of",
]
