"""The weekly review over six seeded weeks: trends equal the statistics on the same counts, stored JSON."""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from audit import Query, SqlAuditStore
from copilot.db.tables import outcomes, runs
from copilot.measure.evidence.holdouts import WorkflowHoldouts
from copilot.measure.evidence.sequential import anytime_lift
from copilot.measure.experiments import arm, lift
from copilot.measure.review.build import build_review
from copilot.measure.review.store import load, save, weeks
from copilot.measure.review.weeks import WEEK, name
from tests.support.review import FIRST, NOW, OUTCOMES, seed_weeks


def counted(engine: Engine, until: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """(replied, subjects) per arm among subjects first run before `until`, counted from the rows."""
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.subject_id, runs.c.holdout, runs.c.created_at)
                            .where(runs.c.created_at <= until)).all()  # fmt: skip
        # every seeded reply comes an hour after the subject's one run, inside the week
        replied = {s for (s,) in conn.execute(
            select(outcomes.c.subject_id).where(outcomes.c.name == "replied"))}  # fmt: skip
    t = [s for s, h, _ in rows if not h]
    h = [s for s, hh, _ in rows if hh]
    return (sum(s in replied for s in t), len(t)), (sum(s in replied for s in h), len(h))


def test_the_review_trends_are_the_statistics_of_each_week_and_are_stored(engine: Engine) -> None:
    seed_weeks(engine, per_week=200)
    review = build_review(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          sources=[WorkflowHoldouts({"next_actions": 0.2})],
                          signals=["plan_tier"], now=NOW)  # fmt: skip
    assert review.week == name(FIRST + 5 * WEEK) and review.retention_outcome == "active"
    [trend] = review.trends
    assert [p.week for p in trend.points] == [name(FIRST + k * WEEK) for k in range(6)]
    for k, p in enumerate(trend.points):
        (tx, tn), (hx, hn) = counted(engine, FIRST + (k + 1) * WEEK)
        fixed, seq = lift(arm(tx, tn), arm(hx, hn)), anytime_lift(arm(tx, tn), arm(hx, hn))
        assert (p.treated, p.holdout) == (tn, hn)
        assert (p.difference, p.low, p.high) == (fixed.difference, fixed.low, fixed.high)
        assert (p.anytime_low, p.anytime_high) == (seq.low, seq.high)
        assert not p.srm_mismatch
    # The true lift (14 points) is confirmed by the end; the workflow is a keep
    assert (trend.points[-1].anytime_low or 0) > 0
    keep = next(i for i in review.prune if i.kind == "workflow")
    assert keep.verdict == "keep" and keep.cost["proposals_reviewed"] > 0
    assert [i.verdict for i in review.prune if i.kind == "signal"] == ["no_evidence"]
    # Reviewers: rates of people's decisions sum to 1 in each week that had decisions
    for o in review.ops:
        if o.approved + o.edited + o.rejected:
            assert (
                abs((o.acceptance_rate or 0) + (o.edit_rate or 0) + (o.rejection_rate or 0) - 1)
                < 1e-12
            )
    assert (
        sum(o.exposures["next_actions"] for o in review.ops)
        == trend.points[-1].treated + trend.points[-1].holdout
    )
    # Cohorts: six weekly cohorts per arm, retention curves as long as the weeks that ended
    assert {(c.week, c.arm) for c in review.cohorts} == {
        (name(FIRST + k * WEEK), a) for k in range(6) for a in ("treated", "holdout")
    }
    first = [c for c in review.cohorts if c.week == name(FIRST)]
    assert all(len(c.retention) == 5 and c.retention[0] > c.retention[-1] for c in first)
    # The funnel: proposed ≥ accepted ≥ completed per segment
    assert review.funnel and all(f.proposed >= f.accepted >= f.completed for f in review.funnel)
    assert "next_actions: replied +" in review.headline
    # Stored, audited, and readable again exactly
    save(engine, SqlAuditStore(engine), review)
    assert load(engine, "acme") == review and load(engine, "acme", review.week) == review
    assert weeks(engine, "acme") == [review.week]
    trail = SqlAuditStore(engine)
    trail.settle("acme")  # an append queued behind another writer's lock is chained now
    [event] = trail.query("acme", Query(event_type="review.built"))
    assert event.data == {"week": review.week, "headline": review.headline}
    json.loads(review.model_dump_json())


def test_an_old_review_stays_readable_after_a_new_week(engine: Engine) -> None:
    seed_weeks(engine, per_week=40)
    store = SqlAuditStore(engine)
    src = [WorkflowHoldouts({"next_actions": 0.2})]
    old = build_review(engine, tenant="acme", outcomes=OUTCOMES, sources=src, now=NOW - WEEK)
    new = build_review(engine, tenant="acme", outcomes=OUTCOMES, sources=src, now=NOW)
    save(engine, store, old)
    save(engine, store, new)
    assert weeks(engine, "acme") == [new.week, old.week]
    assert load(engine, "acme", old.week) == old and load(engine, "acme") == new
    assert load(engine, "acme", "2001-01-01") is None and load(engine, "globex") is None
