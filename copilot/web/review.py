"""The reviewer's pages: the inbox, one approval with why it is there, and the decision forms."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from approvals import ApprovalRequest
from approvals.kinds import Risk
from audit import Actor
from audit import Query as AuditQuery
from copilot.api.depth import MAX_BODY_DEPTH, check_depth
from copilot.api.errors import status_of
from copilot.api.schema import HEX_ID, NAME, SUBJECT
from copilot.errors import CopilotError
from copilot.measure.rollout import paused_rollouts
from copilot.web.common import HEADERS, PREFIX, check_csrf, render, rt_of, signed_in
from copilot.web.sessions import Session

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Reviewer = Annotated[Session, Depends(signed_in("reviewer"))]
ApprovalId = Annotated[str, Path(pattern=HEX_ID)]
Filter = Annotated[str, Query(max_length=200)]
RISKS = [r.value for r in Risk]
# The outcomes a person resolves here; anything else (a bug) stays a server error.
SHOWN_INLINE = {"approval.invalid_payload", "approval.forbidden", "approval.unknown_kind",
                "request.invalid", "request.too_deep", "approval.conflict", "approval.claimed",
                "delivery.conflict", "approval.separation_of_duties", "approval.subject_mismatch",
                "approval.subject_locked"}  # fmt: skip


def _filters(workflow: str, kind: str, risk: str, subject: str) -> tuple[dict[str, Any], str]:
    """The queue's filters from the form, and a message naming any that is malformed."""
    bad = [name for name, value, pattern in (("workflow", workflow, NAME), ("kind", kind, NAME),
                                             ("subject", subject, SUBJECT))
           if value and not re.fullmatch(pattern, value)]  # fmt: skip
    if risk and risk not in RISKS:
        bad.append("risk")
    chosen = {"workflow": workflow or None, "kind": kind or None,
              "risk": risk or None, "subject_id": subject or None}  # fmt: skip
    return chosen, (f"Fix the filter: {', '.join(bad)}" if bad else "")


@router.get("/inbox")
def inbox(
    request: Request,
    session: Reviewer,
    workflow: Filter = "",
    kind: Filter = "",
    risk: Filter = "",
    subject: Filter = "",
) -> Response:
    """Pending approvals by deadline then risk, with filters, claim state and counts."""
    rt, tenant = rt_of(request), session.principal.tenant
    chosen, error = _filters(workflow, kind, risk, subject)
    items: list[ApprovalRequest] = []
    if not error:
        items, _ = rt.gate.queue(tenant, limit=200, **chosen)
    summary = rt.gate.pending_summary(tenant)  # the whole queue, not the 200 shown
    ctx = {
        "items": items,
        "error": error,
        "form": {"workflow": workflow, "kind": kind, "risk": risk, "subject": subject},
        "risks": RISKS,
        "workflows": sorted(summary.workflows),
        "kinds": sorted(summary.kinds),
        "total": summary.total,
        "by_risk": summary.by_risk,
        "claimed": summary.claimed,
        "paused": paused_rollouts(rt.engine, tenant),  # a stop rule's banners
    }
    return render(request, "inbox.html", ctx, status=422 if error else 200)


def _tone(rt: Any, run_id: str | None) -> dict[str, Any] | None:
    """A draft's tone profile and match score, from the run's checkpointed draft step."""
    if run_id is None:
        return None
    for step in reversed(rt.runs.steps(run_id)):
        if "tone_match" in step.output and "profile" in step.output:
            return {"profile": step.output["profile"], "match": step.output["tone_match"]}
    return None


def _detail(
    request: Request,
    session: Session,
    approval_id: str,
    *,
    error: str = "",
    status: int = 200,
    edits: str | None = None,
) -> Response:
    rt, tenant = rt_of(request), session.principal.tenant
    req = rt.gate.get(approval_id, tenant=tenant)
    timeline = []
    if req.run_id is not None:
        rt.audit.settle(tenant)
        timeline = rt.audit.query(tenant, AuditQuery(run_id=req.run_id, limit=500))
    ctx = {
        "req": req,
        "why": req.explanation or {},
        "tone": _tone(rt, req.run_id),
        "timeline": timeline,
        "error": error,
        "edits": edits if edits is not None else json.dumps(req.payload, indent=2, sort_keys=True),
        "versions": [r for r in rt.gate.of_run(req.run_id) if r.action_id == req.action_id]
        if req.run_id
        else [],
        "delivery": rt.deliveries.of_approval(req.id),
    }
    return render(request, "approval.html", ctx, status=status)


@router.get("/approvals/{approval_id}")
def approval(request: Request, session: Reviewer, approval_id: ApprovalId) -> Response:
    """One request: the action and payload, why it is here, the run's timeline, the forms."""
    return _detail(request, session, approval_id)


@router.post("/approvals/{approval_id}/claim")
def claim(
    request: Request, session: Reviewer, approval_id: ApprovalId,
    csrf: Annotated[str, Form(max_length=100)],
) -> Response:  # fmt: skip
    """Hold the request for five minutes so another reviewer does not work it too."""
    check_csrf(session, csrf)
    who = session.principal
    try:
        rt_of(request).gate.claim(approval_id, reviewer=who.name, tenant=who.tenant)
    except CopilotError as exc:
        if exc.code not in SHOWN_INLINE:
            raise
        return _detail(request, session, approval_id, error=exc.message, status=status_of(exc.code))
    return RedirectResponse(f"{PREFIX}/approvals/{approval_id}", status_code=303, headers=HEADERS)


def _changes(text: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The fields the edited JSON changes; CopilotError (`request.invalid`) when it is not JSON.

    Measured before it is parsed (`request.too_deep`): the parser recurses.
    """
    check_depth(text, MAX_BODY_DEPTH, what="The edited payload")
    try:
        edited = json.loads(text)
    except ValueError as exc:
        raise CopilotError(f"The edited payload is not valid JSON: {exc}",
                           code="request.invalid") from exc  # fmt: skip
    if not isinstance(edited, dict):
        raise CopilotError("The edited payload must be a JSON object", code="request.invalid")
    changed = {k: v for k, v in edited.items() if payload.get(k) != v}
    if not changed:
        raise CopilotError("Nothing was changed; use Approve instead", code="request.invalid")
    return changed


@router.post("/approvals/{approval_id}/decide")
def decide(
    request: Request,
    session: Reviewer,
    approval_id: ApprovalId,
    csrf: Annotated[str, Form(max_length=100)],
    payload_hash: Annotated[str, Form(pattern=r"^[0-9a-f]{64}$")],
    action: Annotated[str, Form(pattern=r"^(approve|reject|edit)$")],
    reason: Annotated[str, Form(max_length=2000)] = "",
    edits: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    """Approve, reject with a reason, or edit then approve; problems are shown on the page."""
    check_csrf(session, csrf)
    rt, who = rt_of(request), session.principal
    try:
        if action == "edit":
            current = rt.gate.get(approval_id, tenant=who.tenant)
            req = rt.gate.edit(approval_id, reviewer=who.name, roles=who.roles,
                               edits=_changes(edits, current.payload), payload_hash=payload_hash,
                               tenant=who.tenant, principal=who.ref)  # fmt: skip
        else:
            if action == "reject" and not reason.strip():
                raise CopilotError("Give a reason to reject", code="request.invalid")
            decision: Literal["approve", "reject"] = "reject" if action == "reject" else "approve"
            req = rt.gate.decide(approval_id, reviewer=who.name, roles=who.roles, decision=decision,
                                 payload_hash=payload_hash, reason=reason.strip() or None,
                                 tenant=who.tenant, principal=who.ref)  # fmt: skip
    except CopilotError as exc:
        if exc.code not in SHOWN_INLINE:
            raise
        if exc.code == "approval.conflict":
            message = f"Someone else decided first. {exc.message}. Nothing you sent was applied."
        else:
            message = exc.message
        return _detail(request, session, approval_id, error=message, status=status_of(exc.code),
                       edits=edits if action == "edit" else None)  # fmt: skip
    return RedirectResponse(f"{PREFIX}/approvals/{req.id}", status_code=303, headers=HEADERS)


@router.post("/approvals/{approval_id}/delivery")
def delivery(
    request: Request,
    session: Reviewer,
    approval_id: ApprovalId,
    csrf: Annotated[str, Form(max_length=100)],
    action: Annotated[str, Form(pattern=r"^(retry|cancel)$")],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Retry a dead delivery of the approved action, or cancel it with a reason."""
    check_csrf(session, csrf)
    rt, who = rt_of(request), session.principal
    req = rt.gate.get(approval_id, tenant=who.tenant)  # 404 for another tenant's
    found = rt.deliveries.of_approval(req.id)
    try:
        if found is None:
            raise CopilotError("This action has no delivery yet", code="delivery.conflict")
        if action == "retry":
            rt.deliveries.retry(who.tenant, found.id, actor=Actor.human(who.name))
        else:
            if not reason.strip():
                raise CopilotError("Give a reason to cancel the delivery", code="request.invalid")
            rt.deliveries.cancel(who.tenant, found.id, actor=Actor.human(who.name),
                                 reason=reason.strip())  # fmt: skip
    except CopilotError as exc:
        if exc.code not in SHOWN_INLINE:
            raise
        return _detail(request, session, approval_id, error=exc.message, status=status_of(exc.code))
    return RedirectResponse(f"{PREFIX}/approvals/{req.id}", status_code=303, headers=HEADERS)
