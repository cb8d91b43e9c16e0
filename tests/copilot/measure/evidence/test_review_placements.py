"""The weekly review over a seeded placement log: its funnel per placement and segment, and the
signals its learned policy reads pruned or kept by feature ablation (off-policy, week by week).

On SQLite and PostgreSQL (the `engine` fixture); the log is what a learned placement writes
(decisions with their propensities, then the app's events), read through `PlacementLog`.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Engine, select

from audit import SqlAuditStore
from copilot.db.tables import placement_decisions as dec
from copilot.db.tables import placement_events as evt
from copilot.learn.ablation import ablate, signal_evidence
from copilot.learn.rewards import RewardSpec
from copilot.learn.service import DAY, Learning
from copilot.learn.store import LearnStore
from copilot.learn.train import TrainConfig
from copilot.measure.evidence.holdouts import WorkflowHoldouts
from copilot.measure.review.build import build_review
from copilot.measure.review.model import WeekLift
from copilot.measure.review.prune import NO_POLICY, SignalLift, signal_items
from copilot.measure.review.weeks import WEEK, week_start
from copilot.placements.learned import PlacementLog
from tests.support.review import NOW, OUTCOMES, PLACEMENT, seed_placements, seed_weeks


def learning(engine: Engine) -> Learning:
    """The learning wing over the placements' decision log, rewards final after an hour."""
    return Learning(LearnStore(engine, SqlAuditStore(engine)), source=PlacementLog(engine),
                    rewards=RewardSpec(window=3600.0),
                    training=TrainConfig(min_decisions=50, min_samples=12, floor=0.1),
                    lookback=28 * DAY)  # fmt: skip


def counted(engine: Engine) -> dict[str | None, list[int]]:
    """Per segment (None: all) the decisions, shown, impressions, accepts, completes, from the rows."""
    with engine.connect() as conn:
        rows = conn.execute(select(dec.c.id, dec.c.chosen, dec.c.segment)).all()
        kinds = defaultdict(set)
        for decision_id, kind in conn.execute(select(evt.c.decision_id, evt.c.kind)):
            kinds[decision_id].add(kind)
    found: dict[str | None, list[int]] = defaultdict(lambda: [0] * 5)
    for decision_id, chosen, segment in rows:
        for key in (None, segment):
            c = found[key]
            c[0] += 1
            if chosen is not None:
                c[1] += 1
                c[2:] = [c[2] + ("impression" in kinds[decision_id]),
                         c[3] + ("accept" in kinds[decision_id]),
                         c[4] + ("complete" in kinds[decision_id])]  # fmt: skip
    return found


def test_the_review_has_the_placement_funnel_per_segment(engine: Engine) -> None:
    seed_weeks(engine, per_week=40)
    seed_placements(engine, per_week=60)
    review = build_review(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          sources=[WorkflowHoldouts({"next_actions": 0.2})], now=NOW)  # fmt: skip
    rows = {(f.placement, f.segment): f for f in review.placement_funnel}
    assert set(rows) == {(PLACEMENT, None), (PLACEMENT, "team"), (PLACEMENT, "trial")}
    for segment, (decisions, shown, impressions, accepts, completes) in counted(engine).items():
        f = rows[PLACEMENT, segment]
        assert (f.decisions, f.shown, f.impressions, f.accepts, f.completes) == (
            decisions, shown, impressions, accepts, completes)  # fmt: skip
        assert f.accept_rate == accepts / impressions and f.complete_rate == completes / accepts
    overall = rows[PLACEMENT, None]
    assert overall.subjects == 360 and overall.holdout == overall.decisions - overall.shown
    # The per-workflow funnel is still there beside it
    assert review.funnel and all(f.segment.startswith("next_actions/") for f in review.funnel)
    # A review stored before this field reads with an empty placement funnel
    doc = review.model_dump(mode="json")
    del doc["placement_funnel"]
    assert type(review).model_validate(doc).placement_funnel == []


def test_feature_ablation_keeps_the_signal_that_matters_and_prunes_the_noise(
    engine: Engine,
) -> None:
    seed_placements(engine)
    ev = signal_evidence(learning(engine), {PLACEMENT: ["useful", "noise"]})
    review = build_review(engine, tenant="acme", outcomes=OUTCOMES, sources=[],
                          signals=["useful", "noise", "unread"], signal_evidence=ev, now=NOW)  # fmt: skip
    items = {i.name: i for i in review.prune if i.kind == "signal"}
    assert set(items) == {f"{PLACEMENT}:useful", f"{PLACEMENT}:noise", "unread"}
    useful, noise = items[f"{PLACEMENT}:useful"], items[f"{PLACEMENT}:noise"]
    # Without `useful` the policy cannot tell which candidate completes: a confirmed loss
    assert useful.verdict == "keep" and useful.weeks[-1].low > 0, useful.why
    assert "removing it confirms a loss" in useful.why
    # `noise` was read by every decision and its drop's interval held zero four weeks running
    assert noise.verdict == "prune", noise.why
    assert len(noise.weeks) >= 4 and all(w.low <= 0 <= w.high for w in noise.weeks[-4:])
    assert noise.cost["reads"] > 0 and f"read it {noise.cost['reads']} times" in noise.why
    # A signal no learned policy reads keeps `no_evidence`, with the reason
    assert (items["unread"].verdict, items["unread"].why) == ("no_evidence", NO_POLICY)
    # Deterministic: the same log gives the same evidence
    again = build_review(engine, tenant="acme", outcomes=OUTCOMES, sources=[],
                         signals=["useful", "noise", "unread"], signal_evidence=ev, now=NOW)  # fmt: skip
    assert again.prune == review.prune


def test_a_week_without_enough_rewarded_decisions_is_no_evidence_with_the_reason(
    engine: Engine,
) -> None:
    seed_placements(engine, per_week=5)
    ev = signal_evidence(learning(engine), {PLACEMENT: ["useful"]})
    [lift] = ev("acme", [week_start(NOW) - k * WEEK for k in (1, 0)])
    assert lift.weeks == [] and lift.reason is not None and "rewarded decisions" in lift.reason


def test_ablation_is_the_paired_off_policy_difference_with_minus_without(engine: Engine) -> None:
    seed_placements(engine)
    rows, window = learning(engine).rewarded("acme", PLACEMENT, now=week_start(NOW))
    d = ablate(rows, "useful", surface=PLACEMENT, window=window,
               config=TrainConfig(min_decisions=50, min_samples=12, floor=0.1))  # fmt: skip
    assert d.estimator == "dr" and d.difference == d.candidate - d.current
    assert d.low < d.difference < d.high and d.low > 0


def test_signal_verdicts_read_the_last_weeks_drop_intervals() -> None:
    def weeks(*spans: tuple[float, float]) -> list[WeekLift]:
        return [WeekLift(week=f"w{i}", difference=(lo + hi) / 2, low=lo, high=hi)
                for i, (lo, hi) in enumerate(spans)]  # fmt: skip

    zero = [(-0.01, 0.01)] * 4
    items = signal_items(["gone"], [
        SignalLift(placement="p", signal="kept", weeks=weeks(*zero, (0.01, 0.05)), reads=9),
        SignalLift(placement="p", signal="harmful", weeks=weeks((-0.05, -0.01)), reads=9),
        SignalLift(placement="p", signal="flat", weeks=weeks(*zero), reads=9),
        SignalLift(placement="p", signal="unread", weeks=weeks(*zero), reads=0),
        SignalLift(placement="p", signal="young", weeks=weeks(*zero[:2]), reads=9),
        SignalLift(placement="p", signal="thin", reason="too few rewarded decisions"),
    ], last=4)  # fmt: skip
    got = {i.name: (i.verdict, i.why.split(":")[0]) for i in items}
    assert got == {
        "p:kept": ("keep", "removing it confirms a loss"),
        "p:harmful": ("prune", "removing it confirms a gain"),
        "p:flat": ("prune", "the drop without it has contained zero for 4 weeks (value +0.0000 [-0.0100, +0.0100] with it over without it, as of w3) while the policy read it 9 times"),
        "p:unread": ("undecided", "no confirmed effect of removing it yet (value +0.0000 [-0.0100, +0.0100] with it over without it, as of w3)"),
        "p:young": ("undecided", "no confirmed effect of removing it yet (value +0.0000 [-0.0100, +0.0100] with it over without it, as of w1)"),
        "p:thin": ("no_evidence", "too few rewarded decisions"),
        "gone": ("no_evidence", NO_POLICY.split(":")[0]),
    }  # fmt: skip
