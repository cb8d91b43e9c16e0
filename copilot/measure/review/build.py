"""Build one tenant's weekly review from the comparisons, the gate's records and the deliveries.

Trends are cumulative: each week's point counts everyone exposed by that week's end, with
the fixed-horizon interval and the confidence sequence (valid at every weekly look) side
by side. The review reads comparisons through `ComparisonSource`s (workflow holdouts
today), so placement and learned-policy holdouts join by adding their source.

>>> review = build_review(engine, tenant="acme", outcomes=registry.outcomes,
...                       sources=[WorkflowHoldouts({"next_actions": 0.2})])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, func, select

from audit.db import readonly
from copilot.db.tables import deliveries, runs
from copilot.measure.evidence.cohorts import cohorts
from copilot.measure.evidence.comparison import (
    HOLDOUT,
    Comparison,
    ComparisonSource,
    arms_of,
    evaluate_all,
)
from copilot.measure.evidence.funnel import placement_funnel, workflow_funnel
from copilot.measure.evidence.rules import Paused, as_paused
from copilot.measure.evidence.sequential import DEFAULT_HORIZON, anytime_lift
from copilot.measure.evidence.srm import check_ratio
from copilot.measure.experiments import lift
from copilot.measure.feedback import Feedback, read_feedback
from copilot.measure.outcomes import OutcomeRegistry, OutcomeSpec
from copilot.measure.review import prune
from copilot.measure.review.model import (
    Cohort,
    LiftPoint,
    Trend,
    WeeklyReview,
    WeekOps,
)
from copilot.measure.review.weeks import WEEK, name, reviewed


def build_review(
    engine: Engine,
    *,
    tenant: str,
    outcomes: OutcomeRegistry,
    sources: Sequence[ComparisonSource],
    outcome: str | None = None,
    retention: str | None = None,
    signals: Sequence[str] = (),
    weeks: int = 6,
    prune_weeks: int = 4,
    horizon: int = DEFAULT_HORIZON,
    paused: Sequence[Paused | str] = (),
    signal_evidence: prune.SignalEvidence | None = None,
    now: float | None = None,
) -> WeeklyReview:
    """The review of the last complete week before `now`, with `weeks` weeks of trends.

    `paused`: what stop rules paused (`copilot.measure.rollout.paused_rollouts`; a bare
    name is a workflow). `signal_evidence`: the learned policies' feature ablations, per
    signal a placement's policy reads (`copilot.learn.ablation`); without it signals are
    listed as `no_evidence`.
    """
    now = time.time() if now is None else now
    starts = reviewed(now, weeks)
    end = starts[-1] + WEEK
    primary = _primary(outcomes, outcome)
    kept = outcomes.require(retention) if retention else _declared(outcomes, "active")
    guarded = [s for s in outcomes.specs() if s.guardrail is not None]
    with readonly(engine.connect()) as conn:
        by_week = {s: _comparisons(conn, sources, tenant, primary.name, s + WEEK)
                   for s in starts} if primary else {}  # fmt: skip
        trends = _trends(by_week, primary.name, horizon) if primary else []
        guards = [t for s in guarded for t in _trends(
            {w: _comparisons(conn, sources, tenant, s.name, w + WEEK) for w in starts},
            s.name, horizon)]  # fmt: skip
        latest = by_week.get(starts[-1], [])
        feedback = read_feedback(conn, tenant)
        ops = [_ops(conn, tenant, feedback, s, by_week.get(s, [])) for s in starts]
        found_cohorts = weekly_cohorts(conn, sources, tenant, kept.name, starts) if kept else []
        slots = placement_funnel(conn, tenant, since=starts[0], until=end)
    sign = primary.sign if primary else 1
    items = prune.workflow_items(trends, feedback, since=starts[0], sign=sign, last=prune_weeks)
    items += prune.kind_items([(s + WEEK, by_week.get(s, [])) for s in starts], feedback,
                              since=starts[0], sign=sign, last=prune_weeks, horizon=horizon)  # fmt: skip
    ends = [s + WEEK for s in starts]
    items += prune.signal_items(signals, signal_evidence(tenant, ends) if signal_evidence else (),
                                last=prune_weeks)  # fmt: skip
    evidence = evaluate_all(latest, horizon=horizon)
    review = WeeklyReview(
        tenant=tenant, week=name(starts[-1]), generated_at=now,
        outcome=primary.name if primary else None, retention_outcome=kept.name if kept else None,
        headline="", trends=trends, guardrails=guards, ops=ops, evidence=evidence,
        paused=sorted((Paused.model_validate(as_paused(p)) for p in paused),
                      key=lambda x: (x.kind, x.target)),
        cohorts=found_cohorts, funnel=workflow_funnel(feedback, starts[0], end), prune=items,
        placement_funnel=slots,
    )  # fmt: skip
    return review.model_copy(update={"headline": headline(review)})


def headline(r: WeeklyReview) -> str:
    """One sentence for the notifier: the lift, what blocks, what to prune."""
    parts = []
    for t in r.trends:
        p = t.points[-1] if t.points else None
        if p is not None and p.difference is not None and p.anytime_low is not None:
            parts.append(f"{t.name}: {t.outcome} {p.difference * 100:+.2f} pts "
                         f"[{p.anytime_low * 100:+.2f}, {(p.anytime_high or 0) * 100:+.2f}]")  # fmt: skip
    srm = [e.name for e in r.evidence if e.srm.mismatch]
    if srm:
        parts.append("sample-ratio mismatch in " + ", ".join(srm))
    if r.paused:
        parts.append("paused: " + ", ".join(
            p.target if p.kind == "workflow" else f"{p.kind} {p.target}" for p in r.paused))  # fmt: skip
    cut = [i.name for i in r.prune if i.verdict == "prune"]
    if cut:
        parts.append(f"{len(cut)} prune candidate{'s' if len(cut) > 1 else ''}")
    return f"Week of {r.week}: " + ("; ".join(parts) if parts else "no comparisons yet")


def _primary(registry: OutcomeRegistry, outcome: str | None) -> OutcomeSpec | None:
    if outcome is not None:
        return registry.require(outcome)
    good = [s for s in registry.specs() if s.polarity == "good" and s.guardrail is None]
    return good[0] if good else None


def _declared(registry: OutcomeRegistry, wanted: str) -> OutcomeSpec | None:
    return next((s for s in registry.specs() if s.name == wanted), None)


def _comparisons(
    conn: Connection, sources: Sequence[ComparisonSource], tenant: str, outcome: str, until: float
) -> list[Comparison]:
    return [c for src in sources
            for c in src.comparisons(conn, tenant=tenant, outcome=outcome, until=until)
            if c.allocation.get(HOLDOUT, 0) > 0]  # fmt: skip


def _trends(by_week: dict[float, list[Comparison]], outcome: str, horizon: int) -> list[Trend]:
    points: dict[tuple[str, str], list[LiftPoint]] = defaultdict(list)
    for start, comparisons in sorted(by_week.items()):
        for c in comparisons:
            points[(c.kind, c.name)].append(_point(c, name(start), horizon))
    return [
        Trend(kind=k, name=n, outcome=outcome, points=p) for (k, n), p in sorted(points.items())
    ]


def _point(c: Comparison, week: str, horizon: int) -> LiftPoint:
    t, h = arms_of(c)
    if not t.n or not h.n:
        return LiftPoint(week=week, treated=t.n, holdout=h.n, difference=None, low=None,
                         high=None, anytime_low=None, anytime_high=None, srm_p=None,
                         srm_mismatch=False)  # fmt: skip
    fixed, seq = lift(t, h), anytime_lift(t, h, horizon=horizon)
    srm = check_ratio([t.n, h.n], [1 - c.allocation[HOLDOUT], c.allocation[HOLDOUT]])
    return LiftPoint(week=week, treated=t.n, holdout=h.n, difference=fixed.difference,
                     low=fixed.low, high=fixed.high, anytime_low=seq.low, anytime_high=seq.high,
                     srm_p=srm.p_value, srm_mismatch=srm.mismatch)  # fmt: skip


def _ops(
    conn: Connection, tenant: str, feedback: list[Feedback], start: float, comps: list[Comparison]
) -> WeekOps:
    end = start + WEEK
    decided: Counter[str] = Counter(f.decision for f in feedback
                      if f.decided_at is not None and start <= f.decided_at < end)  # fmt: skip
    people = decided["approved"] + decided["edited"] + decided["rejected"]

    def rate(k: str) -> float | None:
        return decided[k] / people if people else None

    r, d = runs.c, deliveries.c
    levels = {(lv or "-"): n for lv, n in conn.execute(
        select(r.level, func.count()).where(r.tenant == tenant, r.created_at >= start,
                                            r.created_at < end).group_by(r.level))}  # fmt: skip
    failed = conn.execute(select(func.count()).where(
        d.tenant == tenant, d.state.in_(["dead", "failed"]), d.updated_at >= start,
        d.updated_at < end)).scalar_one()  # fmt: skip
    exposures = {c.name: sum(start <= u.exposed_at < end for u in c.units) for c in comps}
    return WeekOps(week=name(start), approved=decided["approved"], edited=decided["edited"],
                   rejected=decided["rejected"], acceptance_rate=rate("approved"),
                   edit_rate=rate("edited"), rejection_rate=rate("rejected"),
                   levels=dict(sorted(levels.items())), deliveries_failed=int(failed),
                   exposures=exposures)  # fmt: skip


def weekly_cohorts(
    conn: Connection,
    sources: Sequence[ComparisonSource],
    tenant: str,
    retention: str,
    starts: Sequence[float],
) -> list[Cohort]:
    """Weekly cohorts by first exposure (the weeks starting at `starts`, as `reviewed` gives
    them): the share with `retention` in each later week, per arm (the review's and the
    report's, `copilot.measure.evidence.cohorts`)."""
    end = starts[-1] + WEEK
    found = _comparisons(conn, sources, tenant, retention, end)
    return cohorts(conn, tenant, found, retention, [(s, name(s)) for s in starts], end)
