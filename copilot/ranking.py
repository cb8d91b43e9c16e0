"""The one policy interface: rules and learned policies rank the same way.

A placement (the crawl stage) and a workflow's ranked proposals (``next_actions``) hand a
policy the candidates that survived every rule (eligibility, caps, consent, the
degradation level); the policy picks one and says how likely that pick was under it.
That probability is what off-policy evaluation needs (the walk stage), so every policy
reports it: 1.0 for a deterministic rule, the exploring distribution's mass for a
learned one. A policy never sees, and so can never pick, a candidate the rules removed.

Everything here is plain data; nothing here reads a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

# A feature as the policy saw it: declared signals (and context fields) after
# minimization, numbers, flags or short categorical strings.
Feature = float | int | bool | str


class Candidate(BaseModel):
    """One thing a policy may choose: an id, its priority class, its declared order."""

    model_config = ConfigDict(frozen=True)

    id: str
    priority: int = Field(default=0, description="higher first under the rules policy")
    order: int = Field(default=0, description="declaration order, the rules' tie-break")
    tags: tuple[str, ...] = ()


class PolicyInput(BaseModel):
    """What a policy is asked: the eligible candidates and the features as seen."""

    model_config = ConfigDict(frozen=True)

    surface: str = Field(description="placement name, or 'workflow:<name>' for proposals")
    subject_id: str
    features: Mapping[str, Feature]
    eligible: Sequence[Candidate]
    level: str = "full"
    tenant: str | None = Field(default=None, description="whose live policy serves (learned)")


@dataclass(frozen=True, slots=True)
class Contribution:
    """One feature's part in a score, for the "why am I seeing this" sentence."""

    feature: str
    weight: float


@dataclass(frozen=True, slots=True)
class Choice:
    """A policy's answer: the pick (or none), its probability, and why.

    A frozen dataclass, not a pydantic model: a policy builds one per decision (the hot
    path bench/learn.py measures), and model validation cost more than the learned
    policy's arithmetic. The one invariant a caller relies on, a probability in [0, 1]
    (off-policy evaluation divides by it), is checked on construction.
    """

    candidate_id: str | None
    probability: float
    policy: str
    version: str
    # The full distribution over the eligible candidates (sums to 1 when any is eligible);
    # off-policy evaluation of another policy needs only its own, but logging this one
    # lets a reviewer see how close the call was.
    distribution: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    contributions: Sequence[Contribution] = ()

    def __post_init__(self) -> None:
        p = self.probability
        if type(p) is not float:
            # Any real number (a NumPy float32 or int64 too, as pydantic's lax float took),
            # but not a bool, which is an int to Python and a mistake here.
            if isinstance(p, bool) or not isinstance(p, Real):
                raise TypeError(f"Choice.probability must be a number, not {type(p).__name__}")
            p = float(p)
            object.__setattr__(self, "probability", p)
        if not 0.0 <= p <= 1.0:  # NaN fails this too
            raise ValueError(f"Choice.probability must be in [0, 1], not {p!r}")
        if self.candidate_id is not None and type(self.candidate_id) is not str:
            raise TypeError("Choice.candidate_id must be a str or None")
        if type(self.policy) is not str or type(self.version) is not str:
            raise TypeError("Choice.policy and Choice.version must be str (the decision log "
                            "records them)")  # fmt: skip


@runtime_checkable
class RankingPolicy(Protocol):
    """Anything that picks among eligible candidates and reports the pick's probability.

    ``draw`` is a number in [0, 1) the caller derives deterministically from the
    decision (so a replay picks the same item); a deterministic policy ignores it.

    A policy whose ``choose`` does no I/O and little work may say so with a class attribute
    ``inline = True``: the API then runs its decides on the event loop (on PostgreSQL),
    with no worker thread. Without it, ``choose`` may block (a learned policy reads its
    live version) and runs on a worker thread.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def choose(self, request: PolicyInput, draw: float) -> Choice: ...


class RulesPolicy:
    """The crawl stage's ranking: highest priority class, then declaration order."""

    inline = True  # a min() over the eligible: it may run on the event loop

    def __init__(self, name: str = "rules", version: str = "1") -> None:
        self._name = name
        self._version = version

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def choose(self, request: PolicyInput, draw: float) -> Choice:
        del draw  # deterministic
        if not request.eligible:
            return Choice(candidate_id=None, probability=1.0, policy=self._name,
                          version=self._version, reason="no eligible candidate")  # fmt: skip
        best = min(request.eligible, key=lambda c: (-c.priority, c.order, c.id))
        return Choice(
            candidate_id=best.id,
            probability=1.0,
            policy=self._name,
            version=self._version,
            distribution={best.id: 1.0},
            reason=f"highest priority ({best.priority}), first declared",
        )


class LoggedDecision(BaseModel):
    """A ranked choice as the decision log keeps it: what learning trains on.

    The placements wing writes these for every decide; a workflow that ranks proposals
    writes them too. ``reward`` is joined later (events, reviewer decisions, outcomes)
    and stays None until the reward window closes.
    """

    model_config = ConfigDict(frozen=True)

    decision_id: str
    tenant: str
    surface: str
    subject_id: str
    decided_at: float
    features: Mapping[str, Feature]
    candidates: Sequence[str]
    chosen: str | None
    propensity: float
    policy: str
    version: str
    holdout: bool = False
    segment: str | None = None
    reward: float | None = None


def same_choice(a: Choice, b: Choice) -> bool:
    """Whether two policies agree on the pick (shadow agreement counts this)."""
    return a.candidate_id == b.candidate_id


__all__ = [
    "Candidate",
    "Choice",
    "Contribution",
    "Feature",
    "LoggedDecision",
    "PolicyInput",
    "RankingPolicy",
    "RulesPolicy",
    "same_choice",
]
