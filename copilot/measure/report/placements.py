"""The report's placement rows: impression → accept → complete, and lift over the holdout.

Read straight from the decision log (`placement_decisions`, `placement_events`), like the
delivery counts: the report needs numbers, not the placements wing. A subject's arm and
segment are those of its first decision in the placement (intent to treat).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from copilot.db.tables import placement_decisions as dec
from copilot.db.tables import placement_events as evt
from copilot.measure.experiments import Method
from copilot.measure.report.exposure import Exposure, converted_subjects, subject_lift
from copilot.measure.report.model import PlacementRow

NO_SEGMENT = "-"


def placement_rows(
    conn: Connection,
    tenant: str,
    *,
    seen: dict[str, list[float]] | None,
    window: float | None,
    alpha: float,
    power: float,
    method: Method,
) -> list[PlacementRow]:
    """A row per placement and one per segment of it (`seen`: the outcome's times per subject)."""
    decisions = conn.execute(
        select(dec.c.id, dec.c.placement, dec.c.subject_id, dec.c.decided_at, dec.c.chosen,
               dec.c.holdout, dec.c.segment)
        .where(dec.c.tenant == tenant).order_by(dec.c.decided_at)
    ).mappings().all()  # fmt: skip
    kinds: dict[str, set[str]] = defaultdict(set)
    for decision_id, kind in conn.execute(
        select(evt.c.decision_id, evt.c.kind).where(evt.c.tenant == tenant)
    ):
        kinds[decision_id].add(kind)
    by_placement: dict[str, list[Any]] = defaultdict(list)
    for d in decisions:
        by_placement[d["placement"]].append(d)
    rows = []
    for name, mine in sorted(by_placement.items()):
        exposures = _exposures(mine)
        hit = converted_subjects(exposures, seen or {}, window) if seen is not None else set()
        segments = sorted({e.segment for e in exposures} - {NO_SEGMENT})
        for segment in (None, *segments):
            members = [e for e in exposures if segment is None or e.segment == segment]
            ids = {e.subject_id for e in members}
            ds = [d for d in mine if d["subject_id"] in ids]
            found = (
                subject_lift(members, hit, alpha=alpha, power=power, method=method)
                if seen is not None
                else None
            )
            rows.append(_row(name, segment, members, ds, kinds, found))
    return rows


def _exposures(decisions: list[Any]) -> list[Exposure]:
    first: dict[str, Any] = {}
    for d in decisions:  # by decision time: the first one wins
        first.setdefault(d["subject_id"], d)
    return [Exposure(subject_id=s, exposed_at=d["decided_at"], holdout=d["holdout"],
                     segment=d["segment"] or NO_SEGMENT) for s, d in sorted(first.items())]  # fmt: skip


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _row(name: str, segment: str | None, members: list[Exposure], ds: list[Any],
         kinds: dict[str, set[str]], found: Any) -> PlacementRow:  # fmt: skip
    shown = [d["id"] for d in ds if d["chosen"] is not None]
    count = {
        k: sum(k in kinds[i] for i in shown)
        for k in ("impression", "accept", "dismiss", "complete")
    }
    held = sum(e.holdout for e in members)
    return PlacementRow(
        placement=name, segment=segment, subjects=len(members), treated=len(members) - held,
        holdout=held, decisions=len(ds), shown=len(shown), impressions=count["impression"],
        accepts=count["accept"], dismisses=count["dismiss"], completes=count["complete"],
        impression_rate=_rate(count["impression"], len(shown)),
        accept_rate=_rate(count["accept"], count["impression"]),
        complete_rate=_rate(count["complete"], count["accept"]), lift=found,
    )  # fmt: skip


__all__ = ["placement_rows"]
