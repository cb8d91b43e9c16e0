"""The report's figures as data: what each plot shows, so JSON readers get the same numbers as the page."""

from __future__ import annotations

from copilot.measure.experiments import wilson
from copilot.measure.report.model import Figure, Point, Report, Series


def figures_of(report: Report) -> list[Figure]:
    """The report's plots, in the order the page shows them."""
    found = []
    if report.lift is not None:
        found += [_lift(report), _rates(report)]
    if report.guardrails:
        found.append(_guardrails(report))
    if any(g.decided for g in report.groups):
        found += _feedback(report)
    return found


def _lift(report: Report) -> Figure:
    assert report.lift is not None
    rows = [("overall", report.lift.lift)] + [
        (f"{s.segment}={s.value}", s.lift) for s in report.segments if s.lift is not None
    ]
    points = [Point(label=label, value=x.difference, low=x.low, high=x.high) for label, x in rows]
    return Figure(name="lift", kind="interval", unit="points", reference=0.0,
                  title=f"Lift on {report.lift.outcome}: treated - holdout, "
                        f"{1 - report.alpha:.0%} interval",
                  series=[Series(name="lift", points=points)])  # fmt: skip


def _rates(report: Report) -> Figure:
    assert report.lift is not None
    rows = [("overall", report.lift.lift)] + [
        (f"{s.segment}={s.value}", s.lift) for s in report.segments if s.lift is not None
    ]
    series = []
    for arm_name in ("treated", "holdout"):
        points = []
        for label, x in rows:
            a = x.treated if arm_name == "treated" else x.holdout
            low, high = wilson(a.successes, a.n, alpha=report.alpha)
            points.append(Point(label=label, value=a.rate, low=low, high=high))
        series.append(Series(name=arm_name, points=points))
    return Figure(name="outcome_rates", kind="bars", unit="rate", series=series,
                  title=f"{report.lift.outcome} rate by arm")  # fmt: skip


def _guardrails(report: Report) -> Figure:
    checks = report.guardrails + [c for s in report.segments for c in s.guardrails]
    points = [
        Point(label=f"{c.metric} ({c.rule}) {c.scope} ≤ {c.threshold:g}",
              value=c.value - c.threshold, low=c.low - c.threshold, high=c.high - c.threshold,
              flag=c.status)
        for c in checks
    ]  # fmt: skip
    return Figure(name="guardrails", kind="interval", unit="points", reference=0.0,
                  title="Guardrails: distance past the threshold (right of 0 is worse)",
                  series=[Series(name="guardrails", points=points)])  # fmt: skip


def _feedback(report: Report) -> list[Figure]:
    groups = [g for g in report.groups if g.decided]
    label = [
        f"{g.workflow} / {g.level}" + (f" / {g.segment}" if report.segment else "") for g in groups
    ]
    stacked = [
        Series(name=name, points=[Point(label=lbl, value=getattr(g, f"{name}_rate") or 0.0)
                                  for lbl, g in zip(label, groups, strict=True)])
        for name in ("acceptance", "edit", "rejection")
    ]  # fmt: skip
    timing = [
        Series(name=name, points=[Point(label=lbl, value=getattr(g, attr) or 0.0)
                                  for lbl, g in zip(label, groups, strict=True)])
        for name, attr in (("median", "median_seconds_to_decision"),
                           ("p90", "p90_seconds_to_decision"))
    ]  # fmt: skip
    return [
        Figure(name="reviewer_feedback", kind="stacked", unit="rate", series=stacked,
               title="What reviewers did: accepted, edited, rejected"),
        Figure(name="time_to_decision", kind="bars", unit="seconds", series=timing,
               title="Time from proposal to a person's decision"),
    ]  # fmt: skip
