"""The comparison source for workflow holdouts: each workflow's first runs per subject, by arm.

A subject's arm is the holdout flag of its first run of the workflow (intent to treat);
it converted when the outcome was observed at or after that run (within the window). The
covariate, fixed before exposure, is a declared numeric signal's last value before the
run, or by default the outcome's own pre-period: whether the subject had the outcome in
the `pre_days` before its first run.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from copilot.db.tables import outcomes, runs, signals
from copilot.measure.evidence.comparison import HOLDOUT, TREATED, Comparison, Unit

PRE = "pre:"  # covariate name prefix: the outcome's own pre-period


@dataclass(frozen=True)
class WorkflowHoldouts:
    """A `ComparisonSource` over workflow holdouts; `allocations` maps workflow → holdout share."""

    allocations: Mapping[str, float]
    covariate: str | None = None  # a numeric signal, or None for the outcome's pre-period
    window_days: float | None = None
    pre_days: float = 28.0
    workflows: tuple[str, ...] | None = field(default=None)

    def comparisons(
        self, conn: Connection, *, tenant: str, outcome: str, until: float
    ) -> list[Comparison]:
        """One comparison per workflow with runs up to `until`."""
        first = _first_runs(conn, tenant, until, self.workflows)
        seen = outcome_times(conn, tenant, outcome)
        named = self.covariate if self.covariate is not None else f"{PRE}{outcome}"
        history = _signal_history(conn, tenant, self.covariate) if self.covariate else None
        window = self.window_days * 86400 if self.window_days is not None else math.inf
        found = []
        for wf, members in sorted(first.items()):
            share = self.allocations.get(wf, 0.0)
            units = []
            for subject, at, held in members:
                times = seen.get(subject, [])
                hit = any(at <= t <= min(at + window, until) for t in times)
                if history is None:
                    i = bisect_left(times, at)
                    cov = float(i > 0 and times[i - 1] >= at - self.pre_days * 86400)
                else:
                    cov = _before(history.get(subject, []), at)
                units.append(Unit(unit_id=subject, arm=HOLDOUT if held else TREATED,
                                  exposed_at=at, outcome=float(hit), covariate=cov))  # fmt: skip
            found.append(Comparison(kind="workflow", name=wf, outcome=outcome,
                                    allocation={TREATED: 1 - share, HOLDOUT: share},
                                    units=units, covariate=named))  # fmt: skip
        return found


def _first_runs(
    conn: Connection, tenant: str, until: float, only: tuple[str, ...] | None
) -> dict[str, list[tuple[str, float, bool]]]:
    r = runs.c
    stmt = select(r.workflow, r.subject_id, r.created_at, r.holdout).where(
        r.tenant == tenant, r.created_at <= until
    )
    if only is not None:
        stmt = stmt.where(r.workflow.in_(only))
    firsts: dict[tuple[str, str], tuple[float, bool]] = {}
    for wf, subject, at, held in conn.execute(stmt.order_by(r.created_at, r.id)):
        firsts.setdefault((wf, subject), (at, bool(held)))
    grouped: dict[str, list[tuple[str, float, bool]]] = defaultdict(list)
    for (wf, subject), (at, held) in sorted(firsts.items()):
        grouped[wf].append((subject, at, held))
    return grouped


def outcome_times(conn: Connection, tenant: str, name: str) -> dict[str, list[float]]:
    """Each subject's times of a non-zero `name` outcome, ascending (any comparison source's)."""
    c = outcomes.c
    stmt = select(c.subject_id, c.observed_at).where(
        c.tenant == tenant, c.name == name, c.value != 0
    )
    found: dict[str, list[float]] = defaultdict(list)
    for subject, at in conn.execute(stmt.order_by(c.observed_at)):
        found[subject].append(at)
    return found


def _signal_history(
    conn: Connection, tenant: str, name: str
) -> dict[str, list[tuple[float, float]]]:
    s = signals.c
    stmt = select(s.subject_id, s.observed_at, s.value).where(s.tenant == tenant, s.name == name)
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for subject, at, value in conn.execute(stmt.order_by(s.observed_at)):
        v = json.loads(value)
        if isinstance(v, bool | int | float):
            found[subject].append((at, float(v)))
    return found


def _before(history: list[tuple[float, float]], at: float) -> float:
    """The last value observed strictly before exposure (NaN: none was)."""
    past = [v for t, v in history if t < at]
    return past[-1] if past else math.nan
