"""The auditor's trail, a subject's page (app/admin), and the evaluation report."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from audit import Actor
from audit import Query as AuditQuery
from copilot.api.routes.audit import export_archive
from copilot.api.schema import HEX_ID, SUBJECT
from copilot.measure.report.build import build_report
from copilot.measure.review.store import load as load_review
from copilot.measure.review.store import weeks as review_weeks
from copilot.measure.rollout import paused_rollouts
from copilot.runtime import Runtime
from copilot.web.common import HEADERS, PREFIX, check_csrf, render, rt_of, signed_in
from copilot.web.sessions import Session

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Auditor = Annotated[Session, Depends(signed_in("auditor"))]
AppOrAdmin = Annotated[Session, Depends(signed_in("app", "admin"))]
Readers = Annotated[Session, Depends(signed_in("reviewer", "auditor", "admin"))]
Filter = Annotated[str, Query(max_length=200)]
SubjectId = Annotated[str, Path(pattern=SUBJECT)]
_TIME = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?"
_FILTERS = {"run": HEX_ID, "subject": SUBJECT, "actor": r"^[\w.:@-]{1,200}$",
            "type": r"^[a-z_.]{1,100}$", "since": _TIME, "until": _TIME}  # fmt: skip
PAGE = 200


@router.get("/audit")
def audit_trail(
    request: Request,
    session: Auditor,
    run: Filter = "",
    subject: Filter = "",
    actor: Filter = "",
    type: Filter = "",
    since: Filter = "",
    until: Filter = "",
) -> Response:
    """Events filtered by run, subject, actor, type and time; hashes, links, verification."""
    rt, tenant = rt_of(request), session.principal.tenant
    form = {"run": run, "subject": subject, "actor": actor, "type": type,
            "since": since, "until": until}  # fmt: skip
    bad = [k for k, v in form.items() if v and not re.fullmatch(_FILTERS[k].strip("^$"), v)]
    entries: list[Any] = []
    if not bad:
        rt.audit.settle(tenant)
        entries = rt.audit.query(tenant, AuditQuery(
            run_id=run or None, subject_id=subject or None, actor_id=actor or None,
            event_type=type or None, since=since or None, until=until or None, limit=PAGE))  # fmt: skip
    verdict = rt.trail.verify(tenant)
    checkpoints = rt.trail.known_checkpoints(tenant)
    ctx = {
        "entries": entries,
        "form": form,
        "error": f"Fix the filter: {', '.join(bad)}" if bad else "",
        "verdict": verdict,
        "checkpoint": checkpoints[-1] if checkpoints else None,
        "page": PAGE,
    }
    return render(request, "audit.html", ctx, status=422 if bad else 200)


@router.get("/audit/export")
def audit_export(request: Request, session: Auditor) -> FileResponse:
    """The tenant's offline-verifiable bundle (as `GET /v1/audit/export`)."""
    return export_archive(rt_of(request), session.principal.tenant)


@router.get("/subjects")
def subject_lookup(request: Request, session: AppOrAdmin, subject: Filter = "") -> Response:
    """Find a subject by id."""
    if subject and re.fullmatch(SUBJECT.strip("^$"), subject):
        return RedirectResponse(f"{PREFIX}/subjects/{subject}", status_code=303, headers=HEADERS)
    error = "Enter a subject id (letters, digits, '.', '_', ':' or '-')" if subject else ""
    return render(request, "subjects.html", {"error": error, "subject": subject},
                  status=422 if error else 200)  # fmt: skip


def _subject(request: Request, session: Session, subject_id: str, *, error: str = "",
             status: int = 200) -> Response:  # fmt: skip
    rt, tenant = rt_of(request), session.principal.tenant
    ctx = {
        "subject_id": subject_id,
        "prefs": rt.consent.get(tenant, subject_id),
        "runs": rt.runs.list_runs(tenant, subject_id=subject_id, limit=100),
        "workflows": _workflows(rt),
        "error": error,
        # The placements: recent decisions and events, and "why not shown" for each now.
        "placement_log": rt.decider.recent(tenant, subject_id),
        "explained": [rt.decider.explain(tenant, p.name, subject_id) for p in rt.placements],
    }
    return render(request, "subject.html", ctx, status=status)


def _workflows(rt: Runtime) -> list[str]:
    # A placement's name is opted out of the way a workflow's is (Preferences.refusal).
    return sorted({w.name for w in rt.registry} | {p.name for p in rt.placements})


@router.get("/subjects/{subject_id}")
def subject(request: Request, session: AppOrAdmin, subject_id: SubjectId) -> Response:
    """A subject's preferences (opt-out, snooze), its runs, and its placements' decisions."""
    return _subject(request, session, subject_id)


@router.post("/subjects/{subject_id}/preferences")
def set_preferences(
    request: Request,
    session: AppOrAdmin,
    subject_id: SubjectId,
    csrf: Annotated[str, Form(max_length=100)],
    opt_out_all: Annotated[bool, Form()] = False,
    opt_out_workflows: Annotated[list[str] | None, Form(max_length=100)] = None,
    snooze_until: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Replace the subject's controls (audited, as `PUT /v1/subjects/{id}/preferences`)."""
    check_csrf(session, csrf)
    rt, who = rt_of(request), session.principal
    known = set(_workflows(rt))
    wanted = set(opt_out_workflows or [])
    snooze: float | None = None
    try:
        if snooze_until:
            snooze = datetime.combine(date.fromisoformat(snooze_until), time(), UTC).timestamp()
    except ValueError:
        return _subject(request, session, subject_id, status=422,
                        error="Snooze until must be a date (YYYY-MM-DD)")  # fmt: skip
    if wanted - known:
        return _subject(request, session, subject_id, status=422,
                        error=f"Unknown workflow: {', '.join(sorted(wanted - known))}")  # fmt: skip
    prefs = rt.consent.get(who.tenant, subject_id).model_copy(update={
        "opt_out_all": opt_out_all, "opt_out_workflows": tuple(sorted(wanted)),
        "snooze_until": snooze})  # fmt: skip
    rt.consent.set(prefs, actor=Actor.human(who.name))
    return RedirectResponse(f"{PREFIX}/subjects/{subject_id}", status_code=303, headers=HEADERS)


@router.get("/report")
def report(request: Request, session: Readers) -> Response:
    """The evaluation report (`copilot report --html`): feedback, lift, guardrails, plots."""
    from copilot.measure.report.html import render_body  # matplotlib loads only for this page

    rt = rt_of(request)
    tenant = session.principal.tenant
    found = build_report(rt.engine, tenant=tenant, outcomes=rt.registry.outcomes,
                         allocations=rt.allocations(), paused=paused_rollouts(rt.engine, tenant),
                         sources=rt.comparison_sources(),
                         learning=rt.learning_provider)  # fmt: skip
    return render(request, "report.html", {"body": render_body(found), "report": found})


@router.get("/review")
def review(
    request: Request, session: Readers, week: Annotated[str, Query(max_length=10)] = ""
) -> Response:
    """The stored weekly review (latest, or `?week=`), with its trend plots; old ones stay readable."""
    from copilot.measure.review.html import render_review  # matplotlib loads only for this page

    rt, tenant = rt_of(request), session.principal.tenant
    if week and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", week):
        week = "-"  # not a week's name: nothing matches, the page says so
    found = load_review(rt.engine, tenant, week or None)
    body = render_review(found, review_weeks(rt.engine, tenant)) if found is not None else ""
    return render(
        request,
        "review.html",
        {"body": body, "week": week},
        status=200 if found is not None or not week else 404,
    )
