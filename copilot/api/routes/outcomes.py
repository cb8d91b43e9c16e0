"""`/v1/outcomes`: what happened after the copilot acted, as the app observed it (role `app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from copilot.api.auth import require, runtime
from copilot.api.errors import responses
from copilot.api.schema import OutcomeBatch, OutcomesRecorded
from copilot.governance.keys import Principal
from copilot.measure.outcomes import record_outcomes
from copilot.runtime import Runtime

router = APIRouter(tags=["outcomes"])
App = Annotated[Principal, Depends(require("app"))]
Rt = Annotated[Runtime, Depends(runtime)]


@router.post(
    "/v1/outcomes",
    status_code=201,
    response_model=OutcomesRecorded,
    responses=responses(401, 403, 413, 422),
    summary="Record outcomes",
)
def record(body: OutcomeBatch, who: App, rt: Rt) -> OutcomesRecorded:
    """Record observed outcomes (replied, converted, churned...), all or nothing: an
    undeclared name (`outcome.undeclared`), a value that does not fit its declaration, a time
    in the future, or a run or action that is not that subject's in this tenant
    (`outcome.invalid`) refuses the whole batch, each problem named in `details.problems`
    with the event's index. The report measures lift over the holdout from these."""
    count = record_outcomes(
        rt.engine, rt.audit, rt.registry.outcomes, tenant=who.tenant,
        events=[e.model_dump(exclude_none=True) for e in body.events],
        source=body.source,
    )  # fmt: skip
    return OutcomesRecorded(recorded=count)
