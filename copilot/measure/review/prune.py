"""Pruning: what costs something without durable lift, by the anytime-valid interval week after week.

A thing is a *prune candidate* when its interval has contained zero at each of the last N
weekly looks while it cost something (proposals people reviewed), or when it confirmed
harm; *keep* when the latest look confirms a lift the good way; else *undecided*. The
interval is the confidence sequence, so looking every week does not manufacture a "keep".
Signals need the off-policy value of the policy without them, which learned-policy
holdouts will provide (copilot/learn): until then they are listed as `no_evidence`.
"""

from __future__ import annotations

from collections.abc import Sequence

from copilot.measure.evidence.comparison import HOLDOUT, TREATED, Comparison, arms_of
from copilot.measure.evidence.sequential import DEFAULT_HORIZON, anytime_lift
from copilot.measure.feedback import Feedback
from copilot.measure.review.model import PruneItem, Trend, WeekLift
from copilot.measure.review.weeks import name

PEOPLE = ("approved", "edited", "rejected")


def verdict(
    kind: str, item: str, weeks: list[WeekLift], cost: dict[str, int], *, sign: int, last: int
) -> PruneItem:
    """Prune, keep or undecided from the last `last` weekly intervals."""
    recent = weeks[-last:]
    if not recent:
        return PruneItem(kind=kind, name=item, weeks=weeks, cost=cost, verdict="undecided",
                         why="no comparison yet")  # fmt: skip
    now = recent[-1]
    good = now.low > 0 if sign > 0 else now.high < 0
    bad = now.high < 0 if sign > 0 else now.low > 0
    spent = sum(cost.values())
    if bad:
        v, why = "prune", f"the interval confirms harm: {_pts(now)}"
    elif good:
        v, why = "keep", f"durable lift: {_pts(now)} as of {now.week}"
    elif len(recent) >= last and all(w.low <= 0 <= w.high for w in recent) and spent > 0:
        v, why = "prune", (f"the interval has contained zero for {last} weeks ({_pts(now)}) "
                           f"while it cost {spent} reviewed proposals")  # fmt: skip
    else:
        v, why = "undecided", f"no confirmed effect yet ({_pts(now)})"
    return PruneItem(kind=kind, name=item, weeks=weeks, cost=cost, verdict=v, why=why)


def _pts(w: WeekLift) -> str:
    return f"{w.difference * 100:+.2f} pts [{w.low * 100:+.2f}, {w.high * 100:+.2f}]"


def workflow_items(
    trends: Sequence[Trend], feedback: Sequence[Feedback], *, since: float, sign: int, last: int
) -> list[PruneItem]:
    """One item per compared workflow, from its weekly trend."""
    found = []
    for t in trends:
        weeks = [WeekLift(week=p.week, difference=p.difference, low=p.anytime_low,
                          high=p.anytime_high) for p in t.points
                 if p.difference is not None and p.anytime_low is not None
                 and p.anytime_high is not None]  # fmt: skip
        reviewed = sum(f.workflow == t.name and f.decision in PEOPLE and f.proposed_at >= since
                       for f in feedback)  # fmt: skip
        found.append(verdict(t.kind, t.name, weeks, {"proposals_reviewed": reviewed},
                             sign=sign, last=last))  # fmt: skip
    return found


def kind_items(
    by_week: Sequence[tuple[float, list[Comparison]]],
    feedback: Sequence[Feedback],
    *,
    since: float,
    sign: int,
    last: int,
    horizon: int = DEFAULT_HORIZON,
) -> list[PruneItem]:
    """One item per action kind: subjects it was proposed to vs the same workflow's holdout."""
    kinds = sorted({(f.workflow, f.kind) for f in feedback})
    found = []
    for wf, kind in kinds:
        weeks = []
        for end, comparisons in by_week:
            got = {f.subject_id for f in feedback
                   if f.workflow == wf and f.kind == kind and f.proposed_at < end}  # fmt: skip
            for c in comparisons:
                if c.name != wf:
                    continue
                units = [u for u in c.units if u.arm == HOLDOUT or u.unit_id in got]
                sub = Comparison(kind=c.kind, name=kind, outcome=c.outcome, allocation=c.allocation,
                                 units=units)  # fmt: skip
                t, h = arms_of(sub)
                if t.n and h.n and any(u.arm == TREATED for u in units):
                    a = anytime_lift(t, h, horizon=horizon)
                    weeks.append(WeekLift(week=name(end - 7 * 86400), difference=a.difference,
                                          low=a.low, high=a.high))  # fmt: skip
        reviewed = sum(f.workflow == wf and f.kind == kind and f.decision in PEOPLE
                       and f.proposed_at >= since for f in feedback)  # fmt: skip
        found.append(verdict("action_kind", f"{wf}:{kind}", weeks,
                             {"proposals_reviewed": reviewed}, sign=sign, last=last))  # fmt: skip
    return found


def signal_items(signals: Sequence[str]) -> list[PruneItem]:
    """Signals: no evidence until learned-policy holdouts give an off-policy value without each."""
    return [PruneItem(kind="signal", name=s, weeks=[], cost={}, verdict="no_evidence",
                      why="needs the off-policy value of the learned policy without this signal "
                          "(learned-policy holdouts, copilot/learn)") for s in signals]  # fmt: skip
