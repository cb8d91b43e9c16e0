"""The learning wing's part of `copilot report`: it fills the report's provider hook.

Per declared surface: every version (when trained, its state), the latest stored
evidence (IPS, SNIPS, DR with intervals), the shadow's agreement, and the live policy's
mean reward against the holdout's over the lookback window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from sqlalchemy import select

from audit.db import readonly
from copilot.db.tables import learn_evidence
from copilot.learn.service import Learning
from copilot.measure.report.learning import (
    ArmReward,
    Interval,
    LearningProvider,
    LearningSection,
    LiveVsHoldout,
    OpeRow,
    ShadowRow,
    VersionPoint,
)

Z = 1.959963984540054  # the 95% normal quantile


def learning_provider(learning: Learning, surfaces: Sequence[str]) -> LearningProvider:
    """The hook `build_report` calls with a tenant."""

    def sections(tenant: str) -> list[LearningSection]:
        return [section(learning, tenant, s) for s in sorted(surfaces)]

    return sections


def section(learning: Learning, tenant: str, surface: str) -> LearningSection:
    """One surface's section."""
    status = learning.status(tenant, surface)
    shadow = status["shadow"]
    return LearningSection(
        surface=surface, serving=status["serving"],
        versions=[VersionPoint.model_validate(v) for v in status["versions"]],
        evidence=latest_evidence(learning, tenant, surface),
        shadow=ShadowRow.model_validate(shadow) if shadow else None,
        live_vs_holdout=live_vs_holdout(learning, tenant, surface),
    )  # fmt: skip


def latest_evidence(learning: Learning, tenant: str, surface: str) -> OpeRow | None:
    """The newest evidence document stored for the surface (by a promotion request)."""
    t = learn_evidence.c
    with readonly(learning.store.engine.connect()) as conn:
        row = conn.execute(select(t.hash, t.document).where(t.tenant == tenant, t.surface == surface)
                           .order_by(t.created_at.desc(), t.hash).limit(1)).first()  # fmt: skip
    if row is None:
        return None
    doc = json.loads(row.document)

    def figures(side: str) -> dict[str, Interval]:
        return {name: Interval(value=e["value"], low=e["low"], high=e["high"])
                for name, e in doc[side]["estimates"].items()}  # fmt: skip

    d = doc["difference"]
    return OpeRow(evidence_hash=row.hash, version=doc["candidate"]["version"],
                  verdict=doc["verdict"], n=doc["n"], candidate=figures("candidate"),
                  current=figures("current"),
                  difference=Interval(value=d["difference"], low=d["low"], high=d["high"]),
                  harmed=list(doc["harmed"]))  # fmt: skip


def live_vs_holdout(learning: Learning, tenant: str, surface: str) -> LiveVsHoldout:
    """Mean reward of what serves (outside the holdout) against the holdout's, Welch interval."""
    rows, _ = learning.rewarded(tenant, surface)
    live = learning.store.in_state(tenant, surface, "live")
    name = f"learned@{live.version}" if live else "rules"
    treated = [d.reward or 0.0 for d in rows if not d.holdout
               and (d.version == live.version if live else d.policy == "rules")]  # fmt: skip
    held = [d.reward or 0.0 for d in rows if d.holdout]
    return LiveVsHoldout(policy=name, live=_arm(treated), holdout=_arm(held),
                         difference=_welch(treated, held))  # fmt: skip


def _arm(values: list[float]) -> ArmReward:
    return ArmReward(n=len(values), mean=sum(values) / len(values) if values else None)


def _welch(a: list[float], b: list[float]) -> Interval | None:
    if len(a) < 2 or len(b) < 2:
        return None

    def mean_var(x: list[float]) -> tuple[float, float]:
        m = sum(x) / len(x)
        return m, sum((v - m) ** 2 for v in x) / (len(x) - 1)

    (ma, va), (mb, vb) = mean_var(a), mean_var(b)
    diff, se = ma - mb, math.sqrt(va / len(a) + vb / len(b))
    return Interval(value=diff, low=diff - Z * se, high=diff + Z * se)


__all__ = ["latest_evidence", "learning_provider", "live_vs_holdout", "section"]
