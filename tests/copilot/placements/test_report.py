"""The report's placement rows: impression → accept → complete, lift over the holdout, per segment."""

from __future__ import annotations

from copilot.measure.outcomes import OutcomeRegistry, OutcomeSpec
from copilot.measure.report.build import build_report
from copilot.placements import EventIn
from copilot.runtime import Runtime
from tests.support.placements import ACTOR

WON = OutcomeSpec(name="t.won", description="won", polarity="good")


def test_placement_rows_count_the_funnel_and_measure_lift_per_segment(
    rt: Runtime, sid: str
) -> None:
    tenant = "rep-" + sid  # a tenant of its own: the report reads all of a tenant's decisions
    placement = rt.placements.get("t.held")
    subjects = [f"{sid}-{i}" for i in range(40)]
    outcomes = []
    for i, subject in enumerate(subjects):
        plan = "trial" if i % 2 else "team"
        d = rt.decider.decide(tenant, "t.held", subject, {"t.plan": plan})
        assert d.holdout == rt.decider.held(placement, subject)
        if d.item is not None:
            for kind in ("impression", "accept", "complete")[: 1 + i % 3]:
                rt.placement_events.record(
                    tenant,
                    d.decision_id,
                    EventIn(event_id=f"{subject}-{kind}", kind=kind),
                    actor=ACTOR,
                )  # type: ignore[arg-type]
        if (d.item is not None and i % 3 == 2) or i % 7 == 0:
            outcomes.append({"subject_id": subject, "name": "t.won"})
    from copilot.measure.outcomes import record_outcomes

    registry = OutcomeRegistry([WON])
    record_outcomes(rt.engine, rt.audit, registry, tenant=tenant, events=outcomes)
    report = build_report(rt.engine, tenant=tenant, outcomes=registry, outcome="t.won")
    rows = {(r.placement, r.segment): r for r in report.placements}
    overall = rows["t.held", None]
    assert (
        overall.subjects == 40 and overall.treated + overall.holdout == 40 and overall.holdout > 0
    )
    assert overall.shown == overall.treated and overall.impressions == overall.shown
    assert overall.accept_rate is not None and 0 < overall.accept_rate < 1
    assert overall.completes <= overall.accepts <= overall.impressions
    assert (
        overall.lift is not None
        and overall.lift.low <= overall.lift.difference <= overall.lift.high
    )
    assert {seg for name, seg in rows if name == "t.held"} == {None, "team", "trial"}
    assert rows["t.held", "team"].subjects + rows["t.held", "trial"].subjects == 40
    assert overall.cells()[0] == "t.held" and "pts" in overall.cells()[-1]
