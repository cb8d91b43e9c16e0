"""`/v1/signals` and `/v1/subjects`: what the app tells us about a subject, its controls and
its erasure (role `app`; erasure also `admin`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from audit import Actor
from copilot.api.auth import require, runtime
from copilot.api.errors import responses
from copilot.api.schema import (
    SUBJECT,
    Erased,
    PreferencesIn,
    PreferencesOut,
    SignalBatch,
    SignalsAccepted,
)
from copilot.erasure import erase_subject
from copilot.governance.consent import Preferences
from copilot.governance.keys import Principal
from copilot.runtime import Runtime

router = APIRouter(tags=["subjects"])
App = Annotated[Principal, Depends(require("app"))]
AppOrAdmin = Annotated[Principal, Depends(require("app", "admin"))]
Rt = Annotated[Runtime, Depends(runtime)]
SubjectId = Annotated[str, Path(pattern=SUBJECT, description="The subject (account) id.")]


@router.post(
    "/v1/signals",
    status_code=201,
    response_model=SignalsAccepted,
    responses=responses(401, 403, 413, 422),
    summary="Ingest signals",
)
def ingest(body: SignalBatch, who: App, rt: Rt) -> SignalsAccepted:
    """Write a subject's signal values, all or nothing: an undeclared signal
    (`signal.undeclared`) or a wrong type (`signal.invalid`) refuses the whole batch. Then
    the event triggers the batch satisfies start their runs (`fired`); a trigger that
    fails is reported in `failed` and never undoes the ingestion."""
    done = rt.proactive().ingest(
        tenant=who.tenant,
        subject_id=body.subject_id,
        values=body.values,
        source=body.source,
        observed_at=body.observed_at.timestamp() if body.observed_at else None,
        principal=who.ref,  # the runs its batch fires were caused by this key
    )
    return SignalsAccepted.model_validate(
        {"accepted": done.count, "fired": [f.model_dump() for f in done.fired],
         "failed": done.failed}
    )  # fmt: skip


def _out(p: Preferences) -> PreferencesOut:
    return PreferencesOut(
        subject_id=p.subject_id,
        opt_out_all=p.opt_out_all,
        opt_out_workflows=list(p.opt_out_workflows),
        snooze_until=datetime.fromtimestamp(p.snooze_until, UTC) if p.snooze_until else None,
        consent_basis=p.consent_basis,
    )


@router.get(
    "/v1/subjects/{subject_id}/preferences",
    response_model=PreferencesOut,
    responses=responses(401, 403, 422),
    summary="A subject's controls",
)
def get_preferences(subject_id: SubjectId, who: App, rt: Rt) -> PreferencesOut:
    """Opt-outs, snooze and consent basis (defaults when never set)."""
    return _out(rt.consent.get(who.tenant, subject_id))


@router.put(
    "/v1/subjects/{subject_id}/preferences",
    response_model=PreferencesOut,
    responses=responses(401, 403, 413, 422),
    summary="Set a subject's controls",
)
def put_preferences(subject_id: SubjectId, body: PreferencesIn, who: App, rt: Rt) -> PreferencesOut:
    """Replace the subject's controls (audited). Enforced when a run is triggered and again
    before an approved action executes."""
    prefs = Preferences(
        tenant=who.tenant,
        subject_id=subject_id,
        opt_out_all=body.opt_out_all,
        opt_out_workflows=tuple(sorted(set(body.opt_out_workflows))),
        snooze_until=body.snooze_until.timestamp() if body.snooze_until else None,
        consent_basis=body.consent_basis,
    )
    return _out(rt.consent.set(prefs, actor=Actor.human(who.name)))


@router.delete(
    "/v1/subjects/{subject_id}",
    response_model=Erased,
    responses=responses(401, 403, 422),
    summary="Erase a subject",
)
def erase(subject_id: SubjectId, who: AppOrAdmin, rt: Rt) -> Erased:
    """Forget the subject in the key's tenant: live runs and pending approvals cancelled;
    signals deleted; stored outputs, payloads and explanations redacted; erasable audit
    payloads deleted with a tombstone, so the trail still verifies; later triggers are
    skipped (`opted_out:all`). Idempotent: erasing again finds less to do."""
    counts = erase_subject(rt, who.tenant, subject_id, actor=Actor.human(who.name))
    return Erased(subject_id=subject_id, counts=counts)
