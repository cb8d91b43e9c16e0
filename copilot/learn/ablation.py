"""Feature ablation: what each signal is worth to a learned policy, off-policy, week by week.

For a signal a placement's learned policy reads, on the placement's rewarded logged
decisions (each with the logging policy's propensity) of a lookback window:

1. the decisions (sorted by id, the training order) are split into two folds by position;
2. for each fold, two policies are trained on the *other* fold (its holdout left out, as
   `Learning.train` does): one on the features as logged, one with the signal's feature
   removed from every context (`train`, the same config);
3. each policy's distribution is replayed on the fold's decisions (the ablated one sees
   contexts without the signal), so no decision is valued by a policy trained on it;
4. both are valued by doubly robust OPE with one cross-fitted reward model
   (`copilot.learn.ope`), and the paired difference with - without gives the drop and its
   standard error (`difference`).

The review looks every week, so each week's interval is the anytime-valid one: the
confidence sequence (`copilot.measure.evidence.sequential.sequence`) around the drop with
that standard error, as every other prune item's; a fixed-horizon interval read weekly
would, sooner or later, "confirm" a signal's tiny, chance difference.

Deterministic: folds by position in id order, training is deterministic, nothing is drawn.
`signal_evidence` runs it at every weekly look for the review (`copilot.measure.review.prune`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from copilot.learn.errors import EvaluationError, NotEnoughDataError
from copilot.learn.evidence import NO_SEGMENT, distribution_of, logged_under, request_of
from copilot.learn.features import fit_spec
from copilot.learn.ope import Difference, Estimator, Logged, difference, z_of
from copilot.learn.policy import LearnedPolicy
from copilot.learn.service import Learning
from copilot.learn.train import TrainConfig, reward_model, rewarded, train
from copilot.measure.evidence.sequential import DEFAULT_HORIZON, sequence
from copilot.measure.review.model import WeekLift
from copilot.measure.review.prune import SignalEvidence, SignalLift
from copilot.measure.review.weeks import WEEK, name
from copilot.ranking import Candidate, LoggedDecision

FOLDS = 2


def without(d: LoggedDecision, signal: str) -> LoggedDecision:
    """The decision as if the signal had never been read."""
    return d.model_copy(update={"features": {k: v for k, v in d.features.items() if k != signal}})


def ablate(
    decisions: Sequence[LoggedDecision],
    signal: str,
    *,
    surface: str,
    window: tuple[float, float],
    config: TrainConfig | None = None,
    catalog: Mapping[str, Candidate] | None = None,
    estimator: Estimator = "dr",
    alpha: float = 0.05,
    ridge: float = 1.0,
) -> Difference:
    """The policy with `signal` minus the policy without it, off-policy on the same decisions.

    Raises NotEnoughDataError when a fold has too few rewarded decisions to train on.
    """
    config = config or TrainConfig()
    catalog = catalog or {}
    rows = rewarded(decisions)
    ids = sorted({c for d in rows for c in d.candidates} | {d.chosen for d in rows if d.chosen})
    fold = np.arange(len(rows)) % FOLDS
    with_p: list[dict[str, float]] = [{} for _ in rows]
    without_p: list[dict[str, float]] = [{} for _ in rows]
    for f in range(FOLDS):
        trained = [d for d, k in zip(rows, fold, strict=True) if k != f and not d.holdout]
        full = LearnedPolicy(train(trained, surface=surface, window=window, config=config))
        cut = LearnedPolicy(train([without(d, signal) for d in trained], surface=surface,
                                  window=window, config=config))  # fmt: skip
        for i in np.flatnonzero(fold == f):
            d = rows[int(i)]
            with_p[i] = distribution_of(full, request_of(d, catalog))
            without_p[i] = distribution_of(cut, request_of(without(d, signal), catalog))
    spec = fit_spec(d.features for d in rows)
    q = reward_model(spec, rows, ids, ridge)
    segment = np.array([d.segment or NO_SEGMENT for d in rows])
    mine: Logged = logged_under(rows, with_p, q, ids, segment)
    theirs: Logged = logged_under(rows, without_p, q, ids, segment)
    return difference(mine, theirs, estimator, alpha=alpha)


def anytime(d: Difference, *, alpha: float, horizon: int = DEFAULT_HORIZON) -> WeekLift:
    """The drop with its confidence-sequence interval (valid at every weekly look)."""
    se = (d.high - d.low) / (2 * z_of(alpha))
    low, high = sequence(d.difference, se, d.n, alpha=alpha, horizon=horizon)
    return WeekLift(week="", difference=d.difference, low=float(low), high=float(high))


def signal_evidence(
    learning: Learning,
    reads: Mapping[str, Sequence[str]],
    *,
    lookback: float | None = None,
    horizon: int = DEFAULT_HORIZON,
) -> SignalEvidence:
    """The review's hook: per learned placement (`reads`: placement → the signals it reads),
    per signal, the ablation at each weekly look over the `lookback` before its end."""
    span = learning.lookback if lookback is None else lookback
    alpha = learning.evidence_config.alpha

    def evidence(tenant: str, ends: Sequence[float]) -> list[SignalLift]:
        found = []
        for surface, signals in sorted(reads.items()):
            looks = [(end, *learning.rewarded(tenant, surface, now=end, lookback=span))
                     for end in ends]  # fmt: skip
            for signal in sorted(signals):
                weeks, reason = [], "no rewarded decisions of its learned policy to value it on"
                seen: set[str] = set()
                for end, rows, window in looks:
                    seen |= {d.decision_id for d in rows if signal in d.features}
                    try:
                        diff = ablate(rows, signal, surface=surface, window=window,
                                      config=learning.training,
                                      catalog=learning.catalogs.get(surface),
                                      estimator=learning.evidence_config.estimator,
                                      alpha=alpha, ridge=learning.evidence_config.ridge)  # fmt: skip
                    except (NotEnoughDataError, EvaluationError) as exc:
                        reason = f"{name(end - WEEK)}: {exc}"
                        continue
                    lift = anytime(diff, alpha=alpha, horizon=horizon)
                    weeks.append(lift.model_copy(update={"week": name(end - WEEK)}))
                found.append(SignalLift(placement=surface, signal=signal, weeks=weeks,
                                        reads=len(seen), reason=None if weeks else reason))  # fmt: skip
        return found

    return evidence


__all__ = ["ablate", "anytime", "signal_evidence", "without"]
