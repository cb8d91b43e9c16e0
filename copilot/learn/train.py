"""Training: rewarded decisions of a lookback window -> a reproducible artifact.

Deterministic by construction: decisions are sorted by id, the feature spec's keys and
levels are sorted, weights are rounded, and nothing reads the clock (the window's bounds
come from the caller). The same window and config give the same artifact hash.

Cold start: a candidate with too few rewarded decisions but a declared description starts
from the similarity-weighted mean of its most similar trained candidates' weights
(cosine similarity of the descriptions' embeddings, positive similarities only).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from copilot.learn.errors import NotEnoughDataError
from copilot.learn.features import FeatureSpec, fit_spec
from copilot.learn.model import Artifact, CandidateModel, fit_ridge, rounded
from copilot.ranking import LoggedDecision

NEIGHBORS = 3


class TrainConfig(BaseModel):
    """How to train; every field is recorded in the artifact it produces."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ridge: float = Field(default=1.0, gt=0)
    # gamma = gamma_scale · √n: exploration shrinks as evidence grows (SquareCB's gamma ∝ √T).
    gamma_scale: float = Field(default=1.0, gt=0)
    floor: float = Field(default=0.02, ge=0, le=0.5)
    min_samples: int = Field(default=30, ge=1)
    min_decisions: int = Field(default=100, ge=1)


def data_hash(decisions: Sequence[LoggedDecision]) -> str:
    """SHA-256 over what was trained on: ids, picks, propensities and rewards, in id order."""
    h = hashlib.sha256()
    for d in decisions:
        h.update(f"{d.decision_id}\x00{d.chosen}\x00{d.propensity!r}\x00{d.reward!r}\n".encode())
    return h.hexdigest()


def rewarded(decisions: Sequence[LoggedDecision]) -> list[LoggedDecision]:
    """The decisions with a pick and a joined reward, sorted by id (the training order)."""
    usable = [d for d in decisions if d.chosen is not None and d.reward is not None]
    return sorted(usable, key=lambda d: d.decision_id)


def train(
    decisions: Sequence[LoggedDecision],
    *,
    surface: str,
    window: tuple[float, float],
    config: TrainConfig | None = None,
    descriptions: Mapping[str, Sequence[float]] | None = None,
) -> Artifact:
    """Fit the artifact on the rewarded decisions (``descriptions``: embedded candidate texts)."""
    config = config or TrainConfig()
    rows = rewarded(decisions)
    if len(rows) < config.min_decisions:
        raise NotEnoughDataError(
            f"{len(rows)} rewarded decisions for {surface!r} in the window; training needs "
            f"{config.min_decisions} (widen the lookback or wait for rewards)",
            surface=surface, rewarded=len(rows),
        )  # fmt: skip
    spec = fit_spec(d.features for d in rows)
    ids = sorted({d.chosen for d in rows if d.chosen is not None} | set(descriptions or {}))
    index = {cid: i for i, cid in enumerate(ids)}
    x = spec.matrix([d.features for d in rows])
    chosen = np.fromiter((index[d.chosen] for d in rows if d.chosen), np.int64, len(rows))
    reward = np.fromiter((float(d.reward or 0.0) for d in rows), np.float64, len(rows))
    weights, counts = fit_ridge(x, chosen, reward, len(ids), config.ridge)
    models = {cid: CandidateModel(weights=rounded(weights[i]), n=int(counts[i]))
              for i, cid in enumerate(ids) if counts[i] > 0}  # fmt: skip
    models.update(_cold_starts(ids, counts, weights, descriptions or {}, config.min_samples))
    return Artifact(
        surface=surface, spec=spec, models=dict(sorted(models.items())),
        gamma=float(f"{config.gamma_scale * math.sqrt(len(rows)):.10g}"), floor=config.floor,
        min_samples=config.min_samples, ridge=config.ridge, window_start=window[0],
        window_end=window[1], n_train=len(rows), data_hash=data_hash(rows),
    )  # fmt: skip


def _cold_starts(
    ids: list[str],
    counts: np.ndarray,
    weights: np.ndarray,
    descriptions: Mapping[str, Sequence[float]],
    min_samples: int,
) -> dict[str, CandidateModel]:
    """Models for thin candidates from their described neighbours (see the module docstring)."""
    trained = [i for i, cid in enumerate(ids) if counts[i] >= min_samples and cid in descriptions]
    if not trained:
        return {}
    basis = _unit(np.array([descriptions[ids[i]] for i in trained], dtype=np.float64))
    out: dict[str, CandidateModel] = {}
    for i, cid in enumerate(ids):
        if counts[i] >= min_samples or cid not in descriptions:
            continue
        sims = basis @ _unit(np.asarray([descriptions[cid]], dtype=np.float64))[0]
        top = [j for j in np.argsort(-sims)[:NEIGHBORS] if sims[j] > 0]
        if not top:
            continue
        mix = sims[top] / sims[top].sum()
        w = mix @ weights[[trained[j] for j in top]]
        out[cid] = CandidateModel(weights=rounded(w), n=int(counts[i]), source="cold_start",
                                  neighbors=tuple(ids[trained[j]] for j in top))  # fmt: skip
    return out


def _unit(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def reward_model(
    spec: FeatureSpec, decisions: Sequence[LoggedDecision], ids: Sequence[str], ridge: float,
    *, folds: int = 2,
) -> np.ndarray:  # fmt: skip
    """Cross-fitted reward predictions for DR: (n x len(ids)), each row from the other folds.

    Cross-fitting (Chernozhukov et al. 2018) keeps a decision's own reward out of the
    prediction its residual is measured against, so DR's interval stays honest.
    """
    index = {cid: i for i, cid in enumerate(ids)}
    x = spec.matrix([d.features for d in decisions])
    chosen = np.fromiter((index[d.chosen] for d in decisions if d.chosen), np.int64, len(decisions))
    reward = np.fromiter((float(d.reward or 0.0) for d in decisions), np.float64, len(decisions))
    fold = np.arange(len(decisions)) % folds
    out = np.zeros((len(decisions), len(ids)))
    for f in range(folds):
        train_rows = fold != f
        w, _ = fit_ridge(x[train_rows], chosen[train_rows], reward[train_rows], len(ids), ridge)
        out[~train_rows] = x[~train_rows] @ w.T
    return out


__all__ = ["TrainConfig", "data_hash", "reward_model", "rewarded", "train"]
