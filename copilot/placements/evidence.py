"""Placement holdouts as an evidence `ComparisonSource`: each placement's first decision per subject.

`PolicyHoldouts` is the learned policy's comparison on a placement: since its version went
live, subjects it served (treated) against the learn holdout, whom the rules serve.

A subject's arm is the holdout flag of its first decision in the placement (intent to
treat: a pause later serving it control does not move it); it converted when the outcome
was observed at or after that decision (within the window). The covariate is the
outcome's own pre-period, as for workflow holdouts: whether the subject had the outcome in
the `pre_days` before its first decision. The sample-ratio check compares the arms with
the placement's declared `holdout`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, select

from copilot.db.tables import placement_decisions as dec
from copilot.measure.evidence.comparison import HOLDOUT, TREATED, Comparison, Unit
from copilot.measure.evidence.holdouts import PRE, outcome_times

DAY = 86400.0


@dataclass(frozen=True)
class PlacementHoldouts:
    """A `ComparisonSource` over placement holdouts; `allocations`: placement → holdout share."""

    allocations: Mapping[str, float]
    window_days: float | None = None
    pre_days: float = 28.0

    def comparisons(
        self, conn: Connection, *, tenant: str, outcome: str, until: float
    ) -> list[Comparison]:
        """One comparison per placement of `allocations` with decisions up to `until`."""
        c = dec.c
        rows = conn.execute(
            select(c.placement, c.subject_id, c.decided_at, c.holdout)
            .where(c.tenant == tenant, c.decided_at <= until,
                   c.placement.in_(sorted(self.allocations)))
            .order_by(c.decided_at, c.id)
        )  # fmt: skip
        first: dict[str, dict[str, tuple[float, bool]]] = {}
        for name, subject, at, held in rows:
            first.setdefault(name, {}).setdefault(subject, (at, bool(held)))
        seen = outcome_times(conn, tenant, outcome)
        window = self.window_days * DAY if self.window_days is not None else math.inf
        found = []
        for name, members in sorted(first.items()):
            units = []
            for subject, (at, held) in sorted(members.items()):
                times = seen.get(subject, [])
                hit = any(at <= t <= min(at + window, until) for t in times)
                i = bisect_left(times, at)
                cov = float(i > 0 and times[i - 1] >= at - self.pre_days * DAY)
                units.append(Unit(unit_id=subject, arm=HOLDOUT if held else TREATED,
                                  exposed_at=at, outcome=float(hit), covariate=cov))  # fmt: skip
            share = self.allocations[name]
            found.append(Comparison(kind="placement", name=name, outcome=outcome,
                                    allocation={TREATED: 1 - share, HOLDOUT: share},
                                    units=units, covariate=f"{PRE}{outcome}"))  # fmt: skip
        return found


@dataclass(frozen=True)
class PolicyHoldouts:
    """A `ComparisonSource`: surface → (learn holdout share, when its live version went live)."""

    surfaces: Mapping[str, tuple[float, float]]

    def comparisons(
        self, conn: Connection, *, tenant: str, outcome: str, until: float
    ) -> list[Comparison]:
        """One comparison per surface: the live policy's subjects against the learn holdout."""
        from copilot.learn.service import in_holdout  # the learning wing loads numpy

        c = dec.c
        seen = outcome_times(conn, tenant, outcome)
        found = []
        for surface, (share, since) in sorted(self.surfaces.items()):
            rows = conn.execute(
                select(c.subject_id, c.decided_at, c.policy)
                .where(c.tenant == tenant, c.placement == surface, c.decided_at >= since,
                       c.decided_at <= until, c.holdout.is_(False))
                .order_by(c.decided_at, c.id)
            )  # fmt: skip
            first: dict[str, tuple[float, str]] = {}
            for subject, at, policy in rows:
                held = in_holdout(tenant, surface, subject, share)
                if held or policy == "learned":
                    first.setdefault(subject, (at, HOLDOUT if held else TREATED))
            units = [Unit(unit_id=subject, arm=arm, exposed_at=at, covariate=math.nan,
                          outcome=float(any(at <= t <= until for t in seen.get(subject, []))))
                     for subject, (at, arm) in sorted(first.items())]  # fmt: skip
            found.append(Comparison(kind="policy", name=surface, outcome=outcome,
                                    allocation={TREATED: 1 - share, HOLDOUT: share}, units=units))  # fmt: skip
        return found


__all__ = ["PlacementHoldouts", "PolicyHoldouts"]
