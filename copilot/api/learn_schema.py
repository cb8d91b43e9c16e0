"""The wire schema of `/v1/learn/...`: versions, status, evidence and promotion decisions.

Pydantic only (no numpy): the learning wing loads when a route first asks the runtime.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from copilot.api.schema import RequestModel

SURFACE = r"^[A-Za-z0-9_.:\-]{1,200}$"
VERSION = r"^[0-9a-f]{16}$"
SurfaceName = Annotated[str, Field(pattern=SURFACE, examples=["onboarding"])]


class VersionOut(BaseModel):
    """A stored policy version: its artifact hash, state, training size and times."""

    tenant: str
    surface: str
    version: str
    hash: str
    state: Literal["shadow", "live", "retired", "demoted"]
    n_train: int
    created_at: float
    updated_at: float
    reason: str | None = None


class ShadowOut(BaseModel):
    """The shadow version's agreement with the policy that acted (`None` before any decision)."""

    version: str
    scored: int
    agreed: int
    agreement: float | None


class StatusOut(BaseModel):
    """What serves (`rules` or `learned@<version>`), the shadow, and every version."""

    surface: str
    serving: str
    shadow: ShadowOut | None
    versions: list[VersionOut]


class SideOut(BaseModel):
    """One policy's off-policy estimates (`ips`, `snips`, `dr`, each with its interval)."""

    policy: str
    version: str | None
    hash: str | None = None
    estimates: dict[str, dict[str, Any]]


class EvidenceOut(BaseModel):
    """The evidence for a version against what serves now; `evidence_hash` goes in the trail."""

    evidence_hash: str
    surface: str
    window: list[float]
    n: int
    config: dict[str, Any]
    candidate: SideOut
    current: SideOut
    difference: dict[str, Any]
    segments: list[dict[str, Any]]
    harmed: list[str]
    verdict: Literal["ok", "not_better", "segment_harmed"]


class PromotionDecisionIn(RequestModel):
    """One admin's vote on a `promote_policy` approval (a reject needs its reason)."""

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, min_length=1, max_length=2000)


__all__ = [
    "SURFACE",
    "VERSION",
    "EvidenceOut",
    "PromotionDecisionIn",
    "ShadowOut",
    "SideOut",
    "StatusOut",
    "SurfaceName",
    "VersionOut",
]
