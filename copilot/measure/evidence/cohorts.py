"""Weekly cohorts by first exposure with retention curves, treated vs holdout: one definition.

The weekly review and `copilot report` both call `cohorts`: a cohort is the subjects of one
comparison first exposed in one week, in one arm (intent to treat); its retention curve is
the share of them with a declared outcome (e.g. `active`) in week 0, 1, ... after their own
exposure, counting only the weeks after exposure that have ended by `end`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from copilot.db.tables import outcomes
from copilot.measure.evidence.comparison import HOLDOUT, TREATED, Comparison

WEEK = 7 * 86400.0


class Cohort(BaseModel):
    """Subjects first exposed in one week, one arm: the share active in each later week."""

    model_config = ConfigDict(frozen=True)

    name: str
    week: str
    arm: str
    size: int
    retention: list[float]  # week 0, 1, ... after exposure (only weeks that have ended)

    @property
    def curve(self) -> str:
        """The retention curve as text: the share active in week 0, 1, ... after exposure."""
        return " → ".join(f"{v:.0%}" for v in self.retention) or "-"


def cohorts(
    conn: Connection,
    tenant: str,
    comparisons: Sequence[Comparison],
    retention: str,
    starts: Sequence[tuple[float, str]],
    end: float,
) -> list[Cohort]:
    """Each comparison's weekly cohorts (`starts`: each week's start and name) per arm."""
    c = outcomes.c
    seen: dict[str, list[float]] = defaultdict(list)
    for subject, at in conn.execute(select(c.subject_id, c.observed_at).where(
            c.tenant == tenant, c.name == retention, c.value != 0, c.observed_at < end)):  # fmt: skip
        seen[subject].append(at)
    found = []
    for comp in comparisons:
        for start, week in starts:
            for arm in (TREATED, HOLDOUT):
                members = [u for u in comp.units
                           if u.arm == arm and start <= u.exposed_at < start + WEEK]  # fmt: skip
                if not members:
                    continue
                ended = int((end - start) // WEEK)  # weeks after exposure that are complete
                curve = [sum(any(u.exposed_at + k * WEEK <= t < u.exposed_at + (k + 1) * WEEK
                                 for t in seen.get(u.unit_id, ())) for u in members) / len(members)
                         for k in range(max(0, ended - 1))]  # fmt: skip
                found.append(Cohort(name=comp.name, week=week, arm=arm, size=len(members),
                                    retention=curve))  # fmt: skip
    return found


__all__ = ["Cohort", "cohorts"]
