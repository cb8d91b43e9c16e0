"""The funnels, one definition for the weekly review and `copilot report`.

`workflow_funnel`: proposed → accepted (by a person or a policy) → completed (executed),
per workflow and degradation level (the segment), from the gate's records.

`placement_funnel`: impression → accept → complete, per placement and segment.

Read from the decision log (`placement_decisions`, `placement_events`). A subject's arm and
segment are those of its first decision in the placement (intent to treat); a row counts
the decisions of its subjects that showed an item (`shown`), and of those the ones with an
impression, an accept, a dismiss, a complete (each decision counted once per event kind).
Rates: `impression_rate` = impressions / shown, `accept_rate` = accepts / impressions,
`complete_rate` = completes / accepts. The weekly review counts the decisions of its weeks
(`since`, `until`); `copilot report` counts all of them and adds each row's lift.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, select

from copilot.db.tables import placement_decisions as dec
from copilot.db.tables import placement_events as evt
from copilot.measure.feedback import Feedback

NO_SEGMENT = "-"
EVENTS = ("impression", "accept", "dismiss", "complete")


class FunnelStep(BaseModel):
    """Proposed → accepted by a person or policy → completed (executed), in one segment."""

    model_config = ConfigDict(frozen=True)

    segment: str
    proposed: int
    accepted: int
    completed: int


def workflow_funnel(
    feedback: Sequence[Feedback], since: float | None = None, until: float | None = None
) -> list[FunnelStep]:
    """Proposed → accepted → completed per `workflow/level`, of proposals in [since, until)."""
    steps: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for f in feedback:
        if (since is not None and f.proposed_at < since) or (
            until is not None and f.proposed_at >= until
        ):
            continue
        s = steps[f"{f.workflow}/{f.level}"]
        s[0] += 1
        s[1] += f.decision in ("approved", "edited", "auto_approved")
        s[2] += f.execution_status == "done"
    return [FunnelStep(segment=k, proposed=a, accepted=b, completed=c)
            for k, (a, b, c) in sorted(steps.items())]  # fmt: skip


class PlacementFunnel(BaseModel):
    """One placement (overall: `segment` None, or one segment): who was exposed, and the funnel."""

    model_config = ConfigDict(frozen=True)

    placement: str
    segment: str | None
    subjects: int
    treated: int
    holdout: int
    decisions: int
    shown: int
    impressions: int
    accepts: int
    dismisses: int
    completes: int
    impression_rate: float | None
    accept_rate: float | None
    complete_rate: float | None


@dataclass(frozen=True, slots=True)
class FirstDecision:
    """A subject's first decision in a placement: its arm, segment and exposure time."""

    subject_id: str
    exposed_at: float
    holdout: bool
    segment: str


@dataclass(frozen=True)
class FunnelGroup:
    """One row's members (their first decisions) and its funnel."""

    members: list[FirstDecision]
    funnel: PlacementFunnel


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def funnel_groups(
    conn: Connection, tenant: str, *, since: float | None = None, until: float | None = None
) -> Iterator[FunnelGroup]:
    """Per placement, the overall row then one per segment, with the members behind each."""
    c = dec.c
    stmt = select(c.id, c.placement, c.subject_id, c.decided_at, c.chosen, c.holdout, c.segment
                  ).where(c.tenant == tenant)  # fmt: skip
    if since is not None:
        stmt = stmt.where(c.decided_at >= since)
    if until is not None:
        stmt = stmt.where(c.decided_at < until)
    decisions = conn.execute(stmt.order_by(c.decided_at, c.id)).mappings().all()
    # The events of the window's decisions only (joined on the decision), not every event
    # the tenant ever recorded.
    events = select(evt.c.decision_id, evt.c.kind).join(
        dec, and_(dec.c.tenant == evt.c.tenant, dec.c.id == evt.c.decision_id)
    ).where(evt.c.tenant == tenant)
    if since is not None:
        events = events.where(c.decided_at >= since)
    if until is not None:
        events = events.where(c.decided_at < until)
    kinds: dict[str, set[str]] = defaultdict(set)
    for decision_id, kind in conn.execute(events):
        kinds[decision_id].add(kind)
    by_placement: dict[str, list[Any]] = defaultdict(list)
    for d in decisions:
        by_placement[d["placement"]].append(d)
    for name, mine in sorted(by_placement.items()):
        first: dict[str, Any] = {}
        for d in mine:  # by decision time: the first one wins
            first.setdefault(d["subject_id"], d)
        exposures = [FirstDecision(subject_id=s, exposed_at=d["decided_at"],
                                   holdout=bool(d["holdout"]), segment=d["segment"] or NO_SEGMENT)
                     for s, d in sorted(first.items())]  # fmt: skip
        segments = sorted({e.segment for e in exposures} - {NO_SEGMENT})
        for segment in (None, *segments):
            members = [e for e in exposures if segment is None or e.segment == segment]
            ids = {e.subject_id for e in members}
            ds = [d for d in mine if d["subject_id"] in ids]
            yield FunnelGroup(members, _funnel(name, segment, members, ds, kinds))


def _funnel(name: str, segment: str | None, members: Sequence[FirstDecision],
            ds: Sequence[Any], kinds: Mapping[str, set[str]]) -> PlacementFunnel:  # fmt: skip
    shown = [d["id"] for d in ds if d["chosen"] is not None]
    count = {k: sum(k in kinds.get(i, ()) for i in shown) for k in EVENTS}
    held = sum(e.holdout for e in members)
    return PlacementFunnel(
        placement=name, segment=segment, subjects=len(members), treated=len(members) - held,
        holdout=held, decisions=len(ds), shown=len(shown), impressions=count["impression"],
        accepts=count["accept"], dismisses=count["dismiss"], completes=count["complete"],
        impression_rate=_rate(count["impression"], len(shown)),
        accept_rate=_rate(count["accept"], count["impression"]),
        complete_rate=_rate(count["complete"], count["accept"]),
    )  # fmt: skip


def placement_funnel(
    conn: Connection, tenant: str, *, since: float | None = None, until: float | None = None
) -> list[PlacementFunnel]:
    """The funnel rows of the decisions in [`since`, `until`) (all of them by default)."""
    return [g.funnel for g in funnel_groups(conn, tenant, since=since, until=until)]


__all__ = ["NO_SEGMENT", "FirstDecision", "FunnelGroup", "FunnelStep", "PlacementFunnel",
           "funnel_groups", "placement_funnel", "workflow_funnel"]  # fmt: skip
