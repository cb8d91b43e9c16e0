"""`/v1/learn/...`: the learning loop for admins (status, train, evidence, promote, decide, check).

The same operations as `copilot learn ...`, within the key's tenant. A refused promotion
is 409 with the verdict's code (`learn.not_better`, `learn.segment_harmed`) and the
evidence's figures in `details`. A promotion is an approval of kind `promote_policy`
that two distinct admins decide here (one admin's second vote is `approval.forbidden`);
the admin is the key's principal, never a field of the body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from approvals import ApprovalRequest
from copilot.api.auth import require, runtime
from copilot.api.errors import responses
from copilot.api.learn_schema import (
    SURFACE,
    VERSION,
    EvidenceOut,
    PromotionDecisionIn,
    StatusOut,
    VersionOut,
)
from copilot.api.schema import HEX_ID
from copilot.governance.keys import Principal
from copilot.measure.guardrails import GuardrailCheck
from copilot.runtime import Runtime

router = APIRouter(prefix="/v1/learn", tags=["learn"])
Admin = Annotated[Principal, Depends(require("admin"))]
Rt = Annotated[Runtime, Depends(runtime)]
Surface = Annotated[str, Path(pattern=SURFACE, description="The ranked surface.")]
Version = Annotated[str, Path(pattern=VERSION, description="A policy version (16 hex digits).")]
ApprovalId = Annotated[str, Path(pattern=HEX_ID, description="The promotion's approval id.")]


@router.get("/{surface}", response_model=StatusOut, responses=responses(401, 403, 422),
            summary="What serves, the shadow's agreement, every version")  # fmt: skip
def status(surface: Surface, who: Admin, rt: Rt) -> StatusOut:
    """`rules` or `learned@<version>` serves; the shadow scores beside it and acts on nothing."""
    return StatusOut.model_validate(rt.learning.status(who.tenant, surface))


@router.post("/{surface}/train", response_model=VersionOut,
             responses=responses(401, 403, 409, 422),
             summary="Train a version on the lookback window (it starts in shadow)")  # fmt: skip
def train(surface: Surface, who: Admin, rt: Rt) -> VersionOut:
    """The holdout is left out; the same window again returns the same version.

    409 `learn.not_enough_data` when the window holds too few rewarded decisions.
    """
    return VersionOut.model_validate(rt.learning.train(who.tenant, surface).model_dump())


@router.get("/{surface}/versions/{version}/evidence", response_model=EvidenceOut,
            responses=responses(401, 403, 404, 409, 422),
            summary="Off-policy evidence for a version")  # fmt: skip
def evidence(surface: Surface, version: Version, who: Admin, rt: Rt) -> EvidenceOut:
    """IPS, SNIPS and DR (each with its interval) for the version and what serves now,
    the paired difference, each segment and the verdict. 404 `learn.not_found`."""
    document, digest = rt.learning.evaluate(who.tenant, surface, version)
    return EvidenceOut.model_validate({"evidence_hash": digest, **document})


@router.post("/{surface}/versions/{version}/promotion", response_model=ApprovalRequest,
             status_code=202, responses=responses(401, 403, 404, 409, 422),
             summary="Request promotion (two distinct admins decide)")  # fmt: skip
def promote(surface: Surface, version: Version, who: Admin, rt: Rt) -> ApprovalRequest:
    """File the `promote_policy` approval carrying the evidence's hash, or refuse (409)
    with `learn.not_better`, `learn.segment_harmed` or `learn.conflict` (not in shadow)."""
    return rt.learning.request_promotion(who.tenant, surface, version, requested_by=who.name,
                                         principal=who.ref)  # the requester's key may not approve


@router.post("/promotions/{approval_id}/decision", response_model=ApprovalRequest,
             responses=responses(401, 403, 404, 409, 422),
             summary="An admin's vote on a promotion")  # fmt: skip
def decide(approval_id: ApprovalId, body: PromotionDecisionIn, who: Admin,
           rt: Rt) -> ApprovalRequest:  # fmt: skip
    """The second distinct admin's approval puts the version live in that transaction.

    403 `approval.forbidden` for a second vote by the same admin or a reject without a
    reason; 404 `approval.not_found` for another tenant's request; 409 `approval.conflict`
    when it was decided already.
    """
    return rt.learning.promotions.decide(
        approval_id, admin=who.name, roles=set(who.roles), approve=body.decision == "approve",
        reason=body.reason, tenant=who.tenant, principal=who.ref,
    )  # fmt: skip


@router.post("/{surface}/guardrails", response_model=list[GuardrailCheck],
             responses=responses(401, 403, 422),
             summary="Check the live version's guardrails (a breach demotes it)")  # fmt: skip
def guardrails(surface: Surface, who: Admin, rt: Rt) -> list[GuardrailCheck]:
    """Against the holdout; a breach moves the live version to `demoted` (the rules serve)."""
    return rt.learning.check_guardrails(who.tenant, surface)
