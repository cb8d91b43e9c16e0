"""The evaluation report: reviewer feedback per workflow, segment and level, and lift over the holdout.

The unit of the lift is the subject, by intent to treat: a subject's arm is the holdout
flag of its first run (of the workflow, or of any workflow), whatever happened after (a
skipped or failed run still counts as treated), and it converted when an outcome of that
name with a non-zero value was observed at or after that first run (and within
`window_days`, when given). Outcomes observed before exposure are not effects and are
left out.

The result is one pydantic model (`Report`): the JSON the API returns and the data every
plot is drawn from (`figures`). `copilot.measure.report.html.render_html` draws the page; the models are in `model`.

>>> report = build_report(engine, tenant="acme", outcomes=registry.outcomes,
...                       outcome="replied", segment="plan_tier")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select

from audit.db import readonly
from copilot.db.tables import deliveries, outcomes, runs, signals
from copilot.measure.evidence.comparison import ComparisonSource
from copilot.measure.evidence.funnel import workflow_funnel
from copilot.measure.evidence.holdouts import WorkflowHoldouts
from copilot.measure.evidence.rules import Paused, as_paused
from copilot.measure.evidence.sequential import DEFAULT_HORIZON
from copilot.measure.experiments import Arm, ExperimentError, Lift, Method, check_alpha
from copilot.measure.feedback import NO_SEGMENT, Feedback, group_feedback, read_feedback
from copilot.measure.guardrails import (
    Finding,
    Guardrail,
    GuardrailCheck,
    SegmentEffect,
    check_guardrail,
    segment_findings,
)
from copilot.measure.outcomes import OutcomeRegistry, OutcomeSpec
from copilot.measure.report.evidence import evidence_of, paused_warnings, srm_warnings
from copilot.measure.report.exposure import Exposure, arms, converted_subjects, subject_lift
from copilot.measure.report.figures import figures_of
from copilot.measure.report.learning import LearningProvider
from copilot.measure.report.model import DeliveryCount, OutcomeLift, Report
from copilot.measure.report.placements import placement_rows
from copilot.measure.review.build import weekly_cohorts
from copilot.measure.review.weeks import reviewed


def build_report(
    engine: Engine,
    *,
    tenant: str,
    outcomes: OutcomeRegistry,
    workflow: str | None = None,
    outcome: str | None = None,
    segment: str | None = None,
    window_days: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    method: Method = "newcombe",
    max_rejection_rate: float = 0.3,
    allocations: Mapping[str, float] | None = None,
    covariate: str | None = None,
    horizon: int = DEFAULT_HORIZON,
    paused: Sequence[Paused | str] | None = None,
    learning: LearningProvider | None = None,
    sources: Sequence[ComparisonSource] | None = None,
    retention: str | None = None,
    weeks: int = 6,
    clock: Callable[[], float] = time.time,
) -> Report:
    """Read the tenant's runs, decisions and outcomes, and measure them.

    With `allocations` (workflow → configured holdout share) each workflow's holdout is
    also checked for a sample-ratio mismatch and measured with an anytime-valid interval
    (tuned for `horizon` subjects) and CUPED on `covariate` (a numeric signal; by default
    the outcome's own pre-period). `paused`: what stop rules paused (workflows,
    placements, learned policies; a bare name is a workflow). `learning` (the runtime's
    hook) gives the learned surfaces' section.

    Cohorts are the weekly review's (`weekly_cohorts`): the subjects first exposed in each
    of the last `weeks` complete weeks, per comparison of `sources` (default: the workflow
    holdouts of `allocations`) and arm, with their `retention` curve (default: a declared
    `active` outcome; none without one). `funnel` is the review's workflow funnel.
    """
    check_alpha(alpha, power)
    if not 0 <= max_rejection_rate <= 1:
        raise ExperimentError(f"max_rejection_rate must be a rate, got {max_rejection_rate}")
    primary = outcomes.require(outcome) if outcome is not None else None
    guarded = [s for s in outcomes.specs() if s.guardrail is not None]
    names = {s.name for s in guarded} | ({primary.name} if primary else set())
    kept = outcomes.require(retention) if retention else next(
        (s for s in outcomes.specs() if s.name == "active"), None)  # fmt: skip
    if sources is None:
        sources = [WorkflowHoldouts(allocations)] if allocations is not None else []
    now = clock()
    with readonly(engine.connect()) as conn:
        run_rows = _runs(conn, tenant, workflow)
        seg_of_run = _segments(conn, tenant, run_rows, segment)
        exposures = _exposures(run_rows, seg_of_run)
        seen = _outcome_times(conn, tenant, names)
        feedback = read_feedback(conn, tenant, workflow=workflow)
        delivery = delivery_counts(conn, tenant, workflow)
        window = window_days * 86400 if window_days is not None else None
        slots = placement_rows(conn, tenant, seen=seen.get(primary.name, {}) if primary else None,
                               window=window, alpha=alpha, power=power, method=method)  # fmt: skip
        evidence = evidence_of(conn, tenant, allocations, primary, workflow, covariate,
                             window_days, alpha, horizon, now)  # fmt: skip
        cohorts = (weekly_cohorts(conn, sources, tenant, kept.name, reviewed(now, weeks))
                   if kept is not None and sources else [])  # fmt: skip
    converted = {name: converted_subjects(exposures, seen.get(name, {}), window) for name in names}
    rejection = Guardrail(metric="rejection_rate", max_rate=max_rejection_rate)
    groups = group_feedback(run_rows, seg_of_run, feedback)
    overall_lift = _lift(exposures, converted, primary, alpha, power, method)
    checks = _guardrails(
        exposures, converted, guarded, feedback, seg_of_run, rejection, None, alpha
    )
    segments = [
        SegmentEffect(
            segment=segment,
            value=value,
            subjects=len(members),
            share=len(members) / len(exposures),
            lift=_maybe_lift(members, converted, primary, alpha, power, method),
            guardrails=_guardrails(members, converted, guarded, feedback, seg_of_run, rejection,
                                   value, alpha, f"{segment}={value}"),
        )
        for value, members in _by_segment(exposures, segment)
    ]  # fmt: skip
    stopped = sorted((Paused.model_validate(as_paused(p)) for p in paused or ()),
                     key=lambda x: (x.kind, x.target))  # fmt: skip
    warnings = srm_warnings(evidence) + paused_warnings(stopped)
    warnings += _warnings(exposures, primary, overall_lift, checks, segments)
    treated = sum(not e.holdout for e in exposures)
    report = Report(
        tenant=tenant,
        generated_at=now,
        workflow=workflow,
        outcome=primary.name if primary else None,
        segment=segment,
        window_days=window_days,
        alpha=alpha,
        method=method,
        subjects=len(exposures),
        treated=treated,
        holdout=len(exposures) - treated,
        groups=groups,
        lift=overall_lift,
        segments=segments,
        guardrails=checks,
        warnings=warnings,
        figures=[],
        deliveries=delivery,
        placements=slots,
        evidence=evidence,
        paused=stopped,
        learning=learning(tenant) if learning is not None else [],
        retention_outcome=kept.name if kept is not None else None,
        cohorts=cohorts,
        funnel=workflow_funnel(feedback),
    )
    return report.model_copy(update={"figures": figures_of(report)})


# -- reading -------------------------------------------------------------------------------


def delivery_counts(conn: Connection, tenant: str, workflow: str | None) -> list[DeliveryCount]:
    """Deliveries per (kind, route): delivered, retrying, dead, cancelled, failed attempts."""
    d = deliveries.c

    def n(state: str) -> Any:
        return func.sum(case((d.state == state, 1), else_=0))

    # Every attempt but a delivered one's last, and but one still in flight, did not deliver.
    settled = func.sum(case((d.state.in_(["delivered", "claimed"]), 1), else_=0))
    q = (
        select(d.kind, d.route, func.count().label("actions"), n("delivered").label("delivered"),
               n("failed").label("retrying"), n("dead").label("dead"),
               n("cancelled").label("cancelled"),
               (func.sum(d.attempts) - settled).label("failed_attempts"))
        .where(d.tenant == tenant)
        .group_by(d.kind, d.route)
        .order_by(d.kind, d.route)
    )  # fmt: skip
    if workflow is not None:
        q = q.join(runs, runs.c.id == d.run_id).where(runs.c.workflow == workflow)
    found = []
    for r in conn.execute(q):
        found.append(DeliveryCount(kind=r.kind, route=r.route, actions=r.actions,
                                   delivered=int(r.delivered), retrying=int(r.retrying),
                                   dead=int(r.dead), cancelled=int(r.cancelled),
                                   failed_attempts=max(0, int(r.failed_attempts))))  # fmt: skip
    return found


def _runs(conn: Connection, tenant: str, workflow: str | None) -> list[dict[str, Any]]:
    stmt = select(runs).where(runs.c.tenant == tenant)
    if workflow is not None:
        stmt = stmt.where(runs.c.workflow == workflow)
    found = []
    for row in conn.execute(stmt.order_by(runs.c.created_at, runs.c.id)):
        m = row._mapping
        inputs = json.loads(m["inputs"])
        found.append(
            {
                "id": m["id"],
                "workflow": m["workflow"],
                "subject_id": m["subject_id"],
                "created_at": m["created_at"],
                "state": m["state"],
                "level": m["level"] or "-",
                "inputs": inputs,
                "holdout": bool(m["holdout"]),
            }
        )
    return found


def _segments(
    conn: Connection, tenant: str, run_rows: list[dict[str, Any]], segment: str | None
) -> dict[str, str]:
    """Each run's segment: the run input of that name, else the subject's signal then."""
    if segment is None:
        return {r["id"]: NO_SEGMENT for r in run_rows}
    history: dict[str, list[tuple[float, str]]] = defaultdict(list)
    stmt = select(signals.c.subject_id, signals.c.observed_at, signals.c.value).where(
        signals.c.tenant == tenant, signals.c.name == segment
    )
    for subject, at, value in conn.execute(stmt.order_by(signals.c.observed_at)):
        history[subject].append((at, _label(json.loads(value))))
    found = {}
    for r in run_rows:
        if segment in r["inputs"]:
            found[r["id"]] = _label(r["inputs"][segment])
            continue
        past = [v for at, v in history.get(r["subject_id"], []) if at <= r["created_at"]]
        found[r["id"]] = past[-1] if past else NO_SEGMENT
    return found


def _by_segment(exposures: list[Exposure], segment: str | None) -> list[tuple[str, list[Exposure]]]:
    if segment is None:
        return []
    found: dict[str, list[Exposure]] = defaultdict(list)
    for e in exposures:
        found[e.segment].append(e)
    return sorted(found.items())


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _exposures(run_rows: list[dict[str, Any]], seg_of_run: dict[str, str]) -> list[Exposure]:
    first: dict[str, dict[str, Any]] = {}
    for r in run_rows:  # ordered by creation: the first one wins
        first.setdefault(r["subject_id"], r)
    return [
        Exposure(subject_id=s, exposed_at=r["created_at"], holdout=r["holdout"],
                 segment=seg_of_run[r["id"]])
        for s, r in sorted(first.items())
    ]  # fmt: skip


def _outcome_times(
    conn: Connection, tenant: str, names: set[str]
) -> dict[str, dict[str, list[float]]]:
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    if not names:
        return found
    c = outcomes.c
    stmt = select(c.name, c.subject_id, c.observed_at).where(
        c.tenant == tenant, c.name.in_(names), c.value != 0
    )
    for name, subject, at in conn.execute(stmt):
        found[name][subject].append(at)
    return found


# -- measuring -----------------------------------------------------------------------------


def _maybe_lift(
    members: list[Exposure],
    converted: dict[str, set[str]],
    primary: OutcomeSpec | None,
    alpha: float,
    power: float,
    method: Method,
) -> Lift | None:
    if primary is None:
        return None
    return subject_lift(members, converted[primary.name], alpha=alpha, power=power, method=method)


def _lift(
    exposures: list[Exposure],
    converted: dict[str, set[str]],
    primary: OutcomeSpec | None,
    alpha: float,
    power: float,
    method: Method,
) -> OutcomeLift | None:
    found = _maybe_lift(exposures, converted, primary, alpha, power, method)
    if found is None or primary is None:
        return None
    return OutcomeLift(outcome=primary.name, polarity=primary.polarity,
                       improved=primary.sign * found.difference > 0, lift=found)  # fmt: skip


def _guardrails(
    members: list[Exposure],
    converted: dict[str, set[str]],
    guarded: list[OutcomeSpec],
    feedback: list[Feedback],
    seg_of_run: dict[str, str],
    rejection: Guardrail,
    segment_value: str | None,
    alpha: float,
    scope: str = "overall",
) -> list[GuardrailCheck]:
    checks = []
    for spec in guarded:
        g = spec.as_guardrail()
        assert g is not None  # guarded specs declare one
        treated, held = arms(members, converted[spec.name])
        checks += check_guardrail(g, treated, held, scope=scope, alpha=alpha)
    decided = [
        f for f in feedback
        if f.decision in ("approved", "edited", "rejected")
        and (segment_value is None or seg_of_run.get(f.run_id or "", "") == segment_value)
    ]  # fmt: skip
    rejected = Arm(n=len(decided), successes=sum(f.decision == "rejected" for f in decided))
    checks += check_guardrail(rejection, rejected, None, scope=scope, alpha=alpha)
    return checks


def _warnings(
    exposures: list[Exposure],
    primary: OutcomeSpec | None,
    overall: OutcomeLift | None,
    checks: list[GuardrailCheck],
    segments: list[SegmentEffect],
) -> list[Finding]:
    found = []
    if primary is not None and overall is None:
        held = sum(e.holdout for e in exposures)
        found.append(Finding(code="no_comparison", details={"treated": len(exposures) - held,
                             "holdout": held},
                             message="no lift: the experiment needs subjects in both arms "
                                     "(is a holdout configured?)"))  # fmt: skip
    if overall is not None:
        mde = overall.lift.mde
        if not overall.lift.significant and mde is not None and abs(overall.lift.difference) < mde:
            found.append(Finding(code="underpowered", details={"mde": mde},
                                 message=f"the lift is below what this sample can detect "
                                         f"({mde:.2%} at {overall.lift.power:.0%} power); keep "
                                         "collecting or plan a larger test"))  # fmt: skip
    for c in checks:
        if c.status == "breach":
            found.append(Finding(code="guardrail_breach", details=c.model_dump(mode="json"),
                                 message=f"{c.metric} ({c.rule}) is past its threshold "
                                         f"{c.threshold:g}: {c.value:.2%} "
                                         f"[{c.low:.2%}, {c.high:.2%}]"))  # fmt: skip
    sign = primary.sign if primary is not None else 1
    found += segment_findings(overall.lift if overall else None, segments, polarity=sign)
    return found
