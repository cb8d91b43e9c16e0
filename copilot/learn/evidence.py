"""The evidence a promotion carries: the candidate against the current policy, off-policy.

On the rewarded decisions of a window, each policy's distribution is replayed per decision;
a reward model cross-fitted on the same decisions gives DR its predictions; every
estimator is reported for both policies, and the paired difference (candidate - current)
overall and per segment. The verdict, checked in this order:

- `segment_harmed`: some segment's whole difference interval lies below zero (the report's
  harm rule);
- `not_better`: the overall difference's lower bound does not reach the declared margin;
- `ok` otherwise.

The document is canonical JSON; its SHA-256 is what the promotion's payload and the audit
trail name, so an approver's evidence is exactly what was computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from audit.canonical import canonical
from copilot.learn.errors import NotEnoughDataError
from copilot.learn.features import fit_spec
from copilot.learn.ope import Estimator, Logged, compare, evaluate
from copilot.learn.policy import LearnedPolicy
from copilot.learn.train import reward_model, rewarded
from copilot.ranking import Candidate, LoggedDecision, PolicyInput, RankingPolicy

NO_SEGMENT = "(none)"


class EvidenceConfig(BaseModel):
    """How the evidence is computed and judged; recorded in the document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    estimator: Estimator = "dr"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    margin: float = Field(default=0.0, description="reward the lower bound must beat current by")
    min_segment: int = Field(default=30, ge=2)
    min_decisions: int = Field(default=100, ge=2)
    ridge: float = Field(default=1.0, gt=0)


def request_of(d: LoggedDecision, catalog: Mapping[str, Candidate]) -> PolicyInput:
    """The policy's input for a logged decision, as it was decided (its candidates, in order)."""
    eligible = [catalog.get(c) or Candidate(id=c, order=i) for i, c in enumerate(d.candidates)]
    return PolicyInput(surface=d.surface, subject_id=d.subject_id, features=d.features,
                       eligible=eligible)  # fmt: skip


def distribution_of(policy: RankingPolicy, request: PolicyInput) -> dict[str, float]:
    """A policy's whole distribution for one request (a deterministic one puts 1 on its pick)."""
    if isinstance(policy, LearnedPolicy):
        ids, p, _, _ = policy.distribution(request)
        return dict(zip(ids, p, strict=True))
    choice = policy.choose(request, 0.0)
    if choice.distribution:
        return dict(choice.distribution)
    return {choice.candidate_id: 1.0} if choice.candidate_id else {}


def logged_under(
    rows: Sequence[LoggedDecision], dists: Sequence[Mapping[str, float]], q: np.ndarray,
    ids: Sequence[str], segment: np.ndarray,
) -> Logged:  # fmt: skip
    """The logged decisions with a target policy's distributions (`dists`, one per row) and
    the reward model's estimates `q` (rows by `ids`): the estimators' input."""
    index = {c: i for i, c in enumerate(ids)}
    n = len(rows)
    pi = np.zeros((n, len(ids)))
    for r, dist in enumerate(dists):
        for c, p in dist.items():
            if c in index:
                pi[r, index[c]] = p
    chosen = np.fromiter((index[d.chosen] for d in rows if d.chosen), np.int64, n)
    at = np.arange(n)
    return Logged(
        propensity=np.fromiter((d.propensity for d in rows), np.float64, n),
        reward=np.fromiter((float(d.reward or 0.0) for d in rows), np.float64, n),
        target=pi[at, chosen], q_logged=q[at, chosen], q_target=(pi * q).sum(1), segment=segment,
    )  # fmt: skip


def _r(x: float) -> float:
    return float(f"{x:.10g}")


def build_evidence(
    decisions: Sequence[LoggedDecision],
    candidate: RankingPolicy,
    current: RankingPolicy,
    *,
    surface: str,
    window: tuple[float, float],
    catalog: Mapping[str, Candidate] | None = None,
    config: EvidenceConfig | None = None,
    candidate_hash: str | None = None,
) -> tuple[dict[str, Any], str]:
    """The evidence document and its hash (see the module docstring)."""
    config = config or EvidenceConfig()
    rows = rewarded(decisions)
    if len(rows) < config.min_decisions:
        raise NotEnoughDataError(
            f"{len(rows)} rewarded decisions for {surface!r} in the window; the evidence needs "
            f"{config.min_decisions}", surface=surface, rewarded=len(rows),
        )  # fmt: skip
    catalog = catalog or {}
    ids = sorted({c for d in rows for c in d.candidates} | {d.chosen for d in rows if d.chosen})
    spec = candidate.artifact.spec if isinstance(candidate, LearnedPolicy) else fit_spec(
        d.features for d in rows)  # fmt: skip
    q = reward_model(spec, rows, ids, config.ridge)
    segment = np.array([d.segment or NO_SEGMENT for d in rows])
    requests = [request_of(d, catalog) for d in rows]
    mine = logged_under(rows, [distribution_of(candidate, r) for r in requests], q, ids, segment)
    theirs = logged_under(rows, [distribution_of(current, r) for r in requests], q, ids, segment)
    overall, segments = compare(mine, theirs, estimator=config.estimator, alpha=config.alpha,
                                min_segment=config.min_segment)  # fmt: skip
    harmed = [s.segment for s in segments if s.harmed]
    verdict = ("segment_harmed" if harmed else
               "not_better" if overall.low < config.margin else "ok")  # fmt: skip

    def figures(data: Logged) -> dict[str, Any]:
        return {name: {k: (_r(v) if isinstance(v, float) else v) for k, v in
                       e.model_dump().items()} for name, e in evaluate(data, alpha=config.alpha).items()}  # fmt: skip

    def diff(d: Any) -> dict[str, Any]:
        return {k: (_r(v) if isinstance(v, float) else v) for k, v in d.model_dump().items()}

    document = {
        "surface": surface, "window": [window[0], window[1]], "n": len(rows),
        "config": config.model_dump(),
        "candidate": {"policy": candidate.name, "version": candidate.version,
                      "hash": candidate_hash, "estimates": figures(mine)},
        "current": {"policy": current.name, "version": current.version,
                    "estimates": figures(theirs)},
        "difference": diff(overall), "segments": [diff(s) for s in segments],
        "harmed": harmed, "verdict": verdict,
    }  # fmt: skip
    return document, hashlib.sha256(canonical(document)).hexdigest()


__all__ = [
    "NO_SEGMENT",
    "EvidenceConfig",
    "build_evidence",
    "distribution_of",
    "logged_under",
    "request_of",
]
