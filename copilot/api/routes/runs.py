"""`/v1/runs`: trigger a run (idempotent), read it, and read its explanation (role `app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from copilot.api.auth import require, runtime
from copilot.api.errors import responses
from copilot.api.schema import (
    HEX_ID,
    ActionExplanation,
    RunAccepted,
    RunCreate,
    RunExplanation,
    RunOut,
)
from copilot.engine.runs import Run, RunState
from copilot.errors import CopilotError, UnknownWorkflowError
from copilot.governance.keys import Principal
from copilot.runtime import Runtime
from copilot.workflow.degradation import CONFIDENCE_CAP, Level

router = APIRouter(prefix="/v1/runs", tags=["runs"])
App = Annotated[Principal, Depends(require("app"))]
Rt = Annotated[Runtime, Depends(runtime)]
RunId = Annotated[str, Path(pattern=HEX_ID, description="The run's id (32 hex digits).")]


def run_out(run: Run) -> RunOut:
    """The API view of a run."""
    return RunOut.model_validate(
        run.model_dump(exclude={"tenant", "lease_owner", "lease_expires_at"})
    )


@router.post(
    "",
    status_code=202,
    response_model=RunAccepted,
    responses=responses(401, 403, 409, 413, 422),
    summary="Trigger a run",
)
def trigger(body: RunCreate, who: App, rt: Rt) -> RunAccepted:
    """Queue a run of `workflow` for `subject_id`; a worker advances it.

    The same `idempotency_key` (per tenant) returns the same run with `created: false`;
    reusing a key for a different request is `run.idempotency_mismatch` (409). A subject
    that opted out or is snoozed gets a `skipped` run with the reason.
    """
    run, created = rt.runner.trigger(
        body.workflow,
        body.subject_id,
        tenant=who.tenant,
        inputs=body.inputs,
        idempotency_key=body.idempotency_key,
        triggered_by=who.name,
        principal=who.ref,
    )
    if not created and not _same_request(run, body):
        raise CopilotError(
            f"idempotency key {body.idempotency_key!r} was used for a different request "
            f"(run {run.id}); use a new key for a new request",
            code="run.idempotency_mismatch",
            run_id=run.id,
        )
    return RunAccepted(**run_out(run).model_dump(), created=created)


def _same_request(run: Run, body: RunCreate) -> bool:
    # The runner stores the inputs with the subject folded in, exactly as asked.
    asked = {"subject_id": body.subject_id, **body.inputs}
    return run.workflow == body.workflow and run.inputs == asked


@router.get(
    "/{run_id}",
    response_model=RunOut,
    responses=responses(401, 403, 404, 422),
    summary="Read a run",
)
def get_run(run_id: RunId, who: App, rt: Rt) -> RunOut:
    """The run's state, degradation level and reasons, result or error."""
    return run_out(rt.runs.get(run_id, tenant=who.tenant))


@router.get(
    "/{run_id}/explanation",
    response_model=RunExplanation,
    responses=responses(401, 403, 404, 422),
    summary="Why am I seeing this?",
)
def explanation(run_id: RunId, who: App, rt: Rt) -> RunExplanation:
    """One sentence on how the run's output was made, the evidence, and how to opt out."""
    run = rt.runs.get(run_id, tenant=who.tenant)
    steps = rt.runs.steps(run.id)
    used = next((s for s in reversed(steps) if s.model), None)
    model_failed = any(r.startswith("model_") for r in run.reasons)
    method = f"model:{used.model}" if used is not None and not model_failed else "rules"
    try:
        signals = [n.name for n in rt.registry.get(run.workflow, run.version).signals]
    except UnknownWorkflowError:
        signals = []
    actions = [
        ActionExplanation(
            approval_id=r.id,
            kind=r.kind,
            status=r.status,
            risk=r.risk.value,
            explanation=r.explanation,
        )
        for r in rt.gate.of_run(run.id)
    ]
    return RunExplanation(
        run_id=run.id,
        workflow=run.workflow,
        subject_id=run.subject_id,
        state=run.state,
        why=_why(run, method),
        method=method,
        level=run.level,
        reasons=run.reasons,
        confidence_cap=CONFIDENCE_CAP[Level(run.level)] if run.level else None,
        model=used.model if used is not None else None,
        prompt_version=used.prompt_version if used is not None else None,
        signals=signals,
        actions=actions,
        opt_out=f"PUT /v1/subjects/{run.subject_id}/preferences "
        f'{{"opt_out_workflows": ["{run.workflow}"]}}',
    )


def _why(run: Run, method: str) -> str:
    because = f" ({', '.join(run.reasons)})" if run.reasons else ""
    if run.state == RunState.SKIPPED:
        return f"Nothing was produced for {run.subject_id}: the run was skipped{because}."
    how = "rules and templates" if method == "rules" else f"the model {method.split(':', 1)[1]}"
    if run.level is None:
        return f"{run.workflow} has not looked at {run.subject_id}'s signals yet."
    return f"Made by {how} from {run.level} context about {run.subject_id}{because}."
