"""The report's placement rows: impression → accept → complete, and lift over the holdout.

The funnel is the weekly review's (`copilot.measure.evidence.funnel.funnel_groups`, one
definition), read straight from the decision log; each row adds the lift of the report's
outcome. A subject's arm and segment are those of its first decision in the placement
(intent to treat).
"""

from __future__ import annotations

from sqlalchemy import Connection

from copilot.measure.evidence.funnel import NO_SEGMENT, funnel_groups
from copilot.measure.experiments import Method
from copilot.measure.report.exposure import Exposure, converted_subjects, subject_lift
from copilot.measure.report.model import PlacementRow


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
    rows = []
    for group in funnel_groups(conn, tenant):
        members = [Exposure(subject_id=e.subject_id, exposed_at=e.exposed_at, holdout=e.holdout,
                            segment=e.segment) for e in group.members]  # fmt: skip
        found = None
        if seen is not None:
            hit = converted_subjects(members, seen, window)
            found = subject_lift(members, hit, alpha=alpha, power=power, method=method)
        rows.append(PlacementRow(**group.funnel.model_dump(), lift=found))
    return rows


__all__ = ["NO_SEGMENT", "placement_rows"]
