"""The trained artifact: per-candidate ridge models, how to encode, how to explore; its hash.

An artifact is plain data (pydantic, JSON). Its hash is SHA-256 over its RFC 8785
canonical JSON, so the same training window and settings give the same bytes and the same
hash on any machine (floats are rounded to ten significant digits before they are stored).
The hash is what the audit trail, the promotion evidence and the policy version name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.canonical import canonical
from copilot.learn.errors import ArtifactError
from copilot.learn.features import FeatureSpec

SCHEMA = 1


class CandidateModel(BaseModel):
    """One candidate's reward model: ridge weights over the spec's columns."""

    model_config = ConfigDict(frozen=True)

    weights: tuple[float, ...]
    n: int = Field(ge=0, description="rewarded decisions that chose it in the window")
    source: Literal["trained", "cold_start"] = "trained"
    neighbors: tuple[str, ...] = ()  # cold start: the similar candidates it started from


class Artifact(BaseModel):
    """Everything scoring needs, and what it was trained on."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA
    surface: str
    spec: FeatureSpec
    models: dict[str, CandidateModel]
    gamma: float = Field(gt=0, description="inverse-gap weighting's greediness")
    floor: float = Field(ge=0, le=0.5, description="least probability of any eligible candidate")
    min_samples: int = Field(ge=1)
    ridge: float = Field(gt=0)
    window_start: float
    window_end: float
    n_train: int
    data_hash: str

    def hash(self) -> str:
        """SHA-256 of the canonical JSON: the version's identity in the trail."""
        return hashlib.sha256(canonical(self.model_dump(mode="json"))).hexdigest()

    def to_json(self) -> str:
        """The stored form (canonical, so the stored bytes hash to `hash()`)."""
        return canonical(self.model_dump(mode="json")).decode()

    def weight_matrix(self, ids: Sequence[str]) -> NDArray[np.float64]:
        """The weights of ``ids`` as rows (zeros where a candidate has no model)."""
        out = np.zeros((len(ids), self.spec.width))
        for r, cid in enumerate(ids):
            m = self.models.get(cid)
            if m is not None:
                out[r] = m.weights
        return out


def empty_artifact(surface: str, floor: float, *, min_samples: int = 30) -> Artifact:
    """An artifact with no models: the rules' pick leads and every candidate keeps the floor.

    What a surface starts from before any training: it explores just enough for the first
    artifact (and its off-policy evaluation) to have support.
    """
    return Artifact(surface=surface, spec=FeatureSpec(), models={}, gamma=1.0, floor=floor,
                    min_samples=min_samples, ridge=1.0, window_start=0.0, window_end=0.0,
                    n_train=0, data_hash=hashlib.sha256(b"").hexdigest())  # fmt: skip


def load_artifact(text: str, expected_hash: str) -> Artifact:
    """Parse a stored artifact and check it against its recorded hash (never serve a mismatch).

    The stored text is canonical JSON, so its bytes hash to the artifact's hash: any
    change to them, even one that parses to the same model, is a mismatch.
    """
    stored = hashlib.sha256(text.encode()).hexdigest()
    if stored != expected_hash:
        raise ArtifactError(
            f"stored artifact hashes to {stored[:12]}, not the recorded {expected_hash[:12]}; "
            "it is not served", expected=expected_hash, actual=stored,
        )  # fmt: skip
    try:
        artifact = Artifact.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise ArtifactError(f"the stored artifact does not parse: {exc}") from exc
    if artifact.schema_version != SCHEMA:
        raise ArtifactError(f"artifact schema {artifact.schema_version} is not {SCHEMA}; retrain")
    actual = artifact.hash()
    if actual != expected_hash:
        raise ArtifactError(
            f"artifact hash {actual[:12]} does not match the recorded {expected_hash[:12]}; "
            "it is not served",
            expected=expected_hash, actual=actual,
        )  # fmt: skip
    return artifact


def fit_ridge(
    x: NDArray[np.float64],
    chosen: NDArray[np.int64],
    reward: NDArray[np.float64],
    k: int,
    ridge: float,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per-candidate ridge regression of reward on context: weights (k x d) and counts (k).

    ``chosen`` holds each row's candidate index in [0, k). Closed form per candidate,
    ``(XᵀX + λI)⁻¹ Xᵀy``, from one pass of sufficient statistics.
    """
    d = x.shape[1]
    weights = np.zeros((k, d))
    counts = np.bincount(chosen, minlength=k).astype(np.int64)
    order = np.argsort(chosen, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for c in range(k):
        rows = order[bounds[c] : bounds[c + 1]]
        if rows.size == 0:
            continue
        xc = x[rows]
        a = xc.T @ xc + ridge * np.eye(d)
        weights[c] = np.linalg.solve(a, xc.T @ reward[rows])
    return weights, counts


def rounded(values: NDArray[np.float64]) -> tuple[float, ...]:
    """Ten significant digits per weight (see the module docstring)."""
    return tuple(float(f"{v:.10g}") for v in values.tolist())


__all__ = ["SCHEMA", "Artifact", "CandidateModel", "empty_artifact", "fit_ridge", "load_artifact", "rounded"]
