"""Pruning: what costs something without durable lift, by the anytime-valid interval week after week.

A thing is a *prune candidate* when its interval has contained zero at each of the last N
weekly looks while it cost something (proposals people reviewed), or when it confirmed
harm; *keep* when the latest look confirms a lift the good way; else *undecided*. The
interval is the confidence sequence, so looking every week does not manufacture a "keep".

Signals are judged by feature ablation of the learned policies that read them
(`copilot.learn.ablation`, handed in as `SignalEvidence`): at each weekly look, on the
placement's logged decisions (with their propensities), the policy trained with the signal
and the policy trained without it are valued off-policy (doubly robust, cross-fitted) and
the paired interval of the drop (with - without) is taken. A signal is a prune candidate
when that interval has contained zero at each of the last N looks while the policy read it
(`reads`: decisions that saw it), or when removing it confirms a gain; *keep* when removing
it confirms a loss. A signal no learned policy reads, or whose policy has no log to value
it on, stays `no_evidence` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class SignalLift:
    """One signal as one placement's learned policy reads it: the drop without it, per week.

    Each `WeekLift` is the off-policy value of the policy trained with the signal minus the
    one trained without it, with its paired interval (reward units). `reads`: decisions of
    the placement that saw the signal over the weeks. `reason`: why `weeks` is empty.
    """

    placement: str
    signal: str
    weeks: list[WeekLift] = field(default_factory=list)
    reads: int = 0
    reason: str | None = None


# tenant, the weekly looks' ends -> each (placement, signal) a learned policy reads
SignalEvidence = Callable[[str, Sequence[float]], Sequence[SignalLift]]
NO_POLICY = ("no placement's learned policy reads it: the off-policy value without it needs "
             "a learned policy and its logged decisions (copilot/learn)")  # fmt: skip


def signal_items(
    signals: Sequence[str], evidence: Sequence[SignalLift] = (), *, last: int = 4
) -> list[PruneItem]:
    """One item per (placement, signal) with ablation evidence; `no_evidence` for the rest."""
    found = [_signal(e, last) for e in sorted(evidence, key=lambda e: (e.signal, e.placement))]
    judged = {e.signal for e in evidence}
    found += [PruneItem(kind="signal", name=s, weeks=[], cost={}, verdict="no_evidence",
                        why=NO_POLICY) for s in signals if s not in judged]  # fmt: skip
    return found


def _signal(e: SignalLift, last: int) -> PruneItem:
    item, cost = f"{e.placement}:{e.signal}", {"reads": e.reads}
    recent = e.weeks[-last:]
    if not recent:
        return PruneItem(kind="signal", name=item, weeks=[], cost=cost, verdict="no_evidence",
                         why=e.reason or "no rewarded decisions to value the policy on")  # fmt: skip
    now = recent[-1]
    drop = (f"value {now.difference:+.4f} [{now.low:+.4f}, {now.high:+.4f}] with it over "
            f"without it, as of {now.week}")  # fmt: skip
    if now.low > 0:
        v, why = "keep", f"removing it confirms a loss: {drop}"
    elif now.high < 0:
        v, why = "prune", f"removing it confirms a gain: {drop}"
    elif len(recent) >= last and all(w.low <= 0 <= w.high for w in recent) and e.reads > 0:
        v, why = "prune", (f"the drop without it has contained zero for {last} weeks ({drop}) "
                           f"while the policy read it {e.reads} times")  # fmt: skip
    else:
        v, why = "undecided", f"no confirmed effect of removing it yet ({drop})"
    return PruneItem(kind="signal", name=item, weeks=e.weeks, cost=cost, verdict=v, why=why)
