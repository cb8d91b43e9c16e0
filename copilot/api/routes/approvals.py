"""`/v1/approvals`: the reviewer's queue and decisions, within the key's tenant (role `reviewer`).

The reviewer is the key's principal, never a field of the body: separation of duties
(whoever triggered a run cannot approve its actions) and one-vote-per-reviewer quorums
hold because the identity cannot be chosen by the caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, Security

from approvals import ApprovalRequest
from approvals.queue import QueueQuery
from copilot.api.auth import authenticate, bearer, require, runtime
from copilot.api.direct import DirectRoute
from copilot.api.errors import responses
from copilot.api.reads import QueueReader
from copilot.api.schema import HEX_ID, ApprovalPage, DecisionIn, QueueParams
from copilot.api.strict import query_model
from copilot.errors import CopilotError
from copilot.governance.keys import Principal
from copilot.runtime import Runtime

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])
Reviewer = Annotated[Principal, Depends(require("reviewer"))]
Rt = Annotated[Runtime, Depends(runtime)]
ApprovalId = Annotated[str, Path(pattern=HEX_ID, description="The request's id (32 hex digits).")]


queue_params, queue_params_doc = query_model(QueueParams)


async def queue(request: Request) -> Response:
    """By deadline, then highest risk first; pass `next_cursor` as `cursor` for the next page."""
    who = await authenticate(request, "reviewer")
    q = await queue_params(request)
    reader = request.app.state.queue_reader
    assert isinstance(reader, QueueReader)
    risk = q.risk.value if q.risk is not None else None
    query = QueueQuery(q.status, q.workflow, q.kind, risk, q.subject_id, q.cursor, q.limit)
    # The page is the stored documents joined (an ApprovalPage's exact JSON): no record
    # is built or validated again on the hottest read (bench/api.py).
    return Response(await reader.page(who.tenant, query), media_type="application/json")


# Direct: the key and the query are checked in `queue` itself, not resolved by FastAPI.
router.add_api_route(
    "",
    queue,
    methods=["GET"],
    response_model=ApprovalPage,
    responses=responses(401, 403, 422),
    summary="The approval queue",
    openapi_extra=queue_params_doc,
    dependencies=[Security(bearer)],  # documents the key; a DirectRoute runs no dependency
    route_class_override=DirectRoute,
)


@router.get(
    "/{approval_id}",
    response_model=ApprovalRequest,
    responses=responses(401, 403, 404, 422),
    summary="One approval request",
)
def get_approval(approval_id: ApprovalId, who: Reviewer, rt: Rt) -> ApprovalRequest:
    """The payload, its hash (what a decision names), risk, quorum, approvers and why."""
    return rt.gate.get(approval_id, tenant=who.tenant)


@router.post(
    "/{approval_id}/decision",
    response_model=ApprovalRequest,
    responses=responses(401, 403, 404, 409, 413, 422),
    summary="Approve, reject, or edit then approve",
)
def decide(approval_id: ApprovalId, body: DecisionIn, who: Reviewer, rt: Rt) -> ApprovalRequest:
    """Decide the payload version named by `payload_hash`, as the key's principal.

    409 `approval.conflict` when it was decided already, superseded, or its payload
    changed (the hash is stale); 403 `approval.forbidden` for self-approval, a role the
    request does not accept, a second vote, or a reject without a reason. With `edits`,
    a new version is made (re-validated, re-scored, policy re-run) and approved by you;
    the response is that new version.
    """
    if body.edits is not None:
        if body.decision != "approve":
            raise CopilotError(
                "edits go with `approve` (edit then approve); to reject, send no edits",
                code="request.invalid",
                fields=[
                    {
                        "field": "body.edits",
                        "message": "only with decision=approve",
                        "type": "value_error",
                    }
                ],
            )
        req = rt.gate.edit(
            approval_id,
            reviewer=who.name,
            roles=who.roles,
            edits=body.edits,
            payload_hash=body.payload_hash,
            tenant=who.tenant,
            principal=who.ref,
        )
    else:
        req = rt.gate.decide(
            approval_id,
            reviewer=who.name,
            roles=who.roles,
            decision=body.decision,
            payload_hash=body.payload_hash,
            reason=body.reason,
            tenant=who.tenant,
            principal=who.ref,
        )
    # A decision that settled the run's last open request queued the run in its own
    # transaction; the gate then wakes a worker (a hint: the sweeper covers a lost one).
    return req
