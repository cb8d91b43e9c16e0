"""The learned policy: ridge scores per candidate, explored by inverse-gap weighting.

Why inverse-gap weighting (SquareCB; Abe & Long 1999, Foster & Rakhlin 2020, "Beyond
UCB", and Foster et al. 2020, "Practical contextual bandits with regression oracles"):
given any regression model's scores it writes the exploring distribution in closed form,

    p(a) = 1 / (K + gamma·(y^_best - y^_a))   for every a but the best, which takes the rest,

so the probability of every pick is exact. Off-policy evaluation divides by it, and the
decision log must record it; Thompson sampling's pick probability has no closed form (it
needs Monte Carlo integration per decision). IGW's regret guarantee needs only a good
regression oracle, which per-candidate ridge over the declared features is, and it
explores in proportion to how far behind a candidate scores rather than uniformly (as
ε-greedy does). On top, every eligible candidate keeps the artifact's floor probability.

What the policy never does: pick outside ``request.eligible`` (the rules, caps and consent
already removed the rest), explore at the ``thin`` or ``none`` level (the rules decide
there, deterministically), or guess for a candidate it has no model for (too few rewarded
decisions and no cold start): then the rules' pick leads, with the floor kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from copilot.learn.model import Artifact
from copilot.ranking import Choice, Contribution, PolicyInput

RULES_LEVELS = frozenset({"thin", "none"})  # degradation levels where only the rules decide
TOP_CONTRIBUTIONS = 3


def igw(scores: Sequence[float], gamma: float, floor: float) -> list[float]:
    """Inverse-gap-weighted probabilities over ``scores``, each at least ``floor``.

    Plain Python on purpose: a decision scores a handful of candidates, where numpy's
    per-call overhead costs more than the arithmetic (bench/learn.py measures it).
    """
    k = len(scores)
    top = max(scores)
    best = scores.index(top)
    p = [1.0 / (k + gamma * (top - s)) for s in scores]
    p[best] = 0.0
    p[best] = 1.0 - sum(p)
    return _with_floor(p, floor)


def _with_floor(p: list[float], floor: float) -> list[float]:
    k = len(p)
    if k * floor >= 1.0:
        return [1.0 / k] * k
    keep = 1.0 - k * floor
    return [keep * q + floor for q in p]


def _pick(p: list[float], draw: float) -> int:
    """The index the draw lands on in the cumulative distribution."""
    total = 0.0
    for i, q in enumerate(p):
        total += q
        if draw < total:
            return i
    return len(p) - 1


def _rules_pick(request: PolicyInput) -> str:
    best = min(request.eligible, key=lambda c: (-c.priority, c.order, c.id))
    return best.id


class LearnedPolicy:
    """A RankingPolicy over a trained artifact; the version is the artifact's hash prefix."""

    def __init__(self, artifact: Artifact, *, version: str | None = None,
                 name: str = "learned") -> None:  # fmt: skip
        self.artifact = artifact
        self._name = name
        self._version = version or artifact.hash()[:16]
        self._names = artifact.spec.names
        self._spec = artifact.spec
        self._width = artifact.spec.width
        self._gamma, self._floor = artifact.gamma, artifact.floor
        self._weights = {cid: m.weights for cid, m in artifact.models.items()
                         if m.source == "cold_start" or m.n >= artifact.min_samples}  # fmt: skip

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def distribution(
        self, request: PolicyInput
    ) -> tuple[list[str], list[float], list[float] | None, str]:
        """The eligible ids, their probabilities, their scores (None under the rules), and why."""
        ids, p, scores, why, _ = self._distribution(request)
        return ids, p, scores, why

    def _distribution(
        self, request: PolicyInput
    ) -> tuple[list[str], list[float], list[float] | None, str, list[tuple[int, float]]]:
        ids = [c.id for c in request.eligible]
        weights = self._weights
        if request.level in RULES_LEVELS or any(i not in weights for i in ids):
            ruled = _rules_pick(request)
            lead = [1.0 if i == ruled else 0.0 for i in ids]
            if request.level in RULES_LEVELS:
                return ids, lead, None, f"context is {request.level}: the rules decide", []
            unknown = ", ".join(i for i in ids if i not in weights)
            return ids, _with_floor(lead, self._floor), None, (
                f"not enough evidence for {unknown}: the rules' pick leads"), []  # fmt: skip
        # The context's non-zero columns only: a handful of the artifact's width.
        x = self._spec.sparse(request.features)
        scores = []
        for i in ids:
            w = weights[i]
            total = 0.0
            for j, v in x:
                total += w[j] * v
            scores.append(total)
        return ids, igw(scores, self._gamma, self._floor), scores, "learned", x

    def choose(self, request: PolicyInput, draw: float) -> Choice:
        """Pick by ``draw`` from the distribution; the pick's probability and top contributions."""
        if not request.eligible:
            return Choice(candidate_id=None, probability=1.0, policy=self._name,
                          version=self._version, reason="no eligible candidate")  # fmt: skip
        ids, p, scores, why, x = self._distribution(request)
        i = _pick(p, draw)
        chosen = ids[i]
        contributions: list[Contribution] = []
        if scores is not None:
            w = self._weights[chosen]
            parts = sorted([(w[j] * v, j) for j, v in x], key=_magnitude)
            contributions = [Contribution(self._names[j], part)
                             for part, j in parts[:TOP_CONTRIBUTIONS] if part != 0.0]  # fmt: skip
            top = max(scores)
            why = (f"highest predicted reward ({top:.2f})" if scores[i] == top else
                   f"exploring: predicted {scores[i]:.2f} vs best {top:.2f}")  # fmt: skip
        return Choice(
            candidate_id=chosen, probability=p[i], policy=self._name, version=self._version,
            distribution=dict(zip(ids, p, strict=True)), reason=why, contributions=contributions,
        )  # fmt: skip


def _magnitude(part: tuple[float, int]) -> float:
    """Sort key: the largest contribution, either sign, first."""
    return -abs(part[0])


__all__ = ["RULES_LEVELS", "LearnedPolicy", "igw"]
