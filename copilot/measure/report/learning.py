"""The report's learning section: policy versions over time, OPE estimates with intervals,
shadow agreement, and live vs holdout, per learned surface.

The report sits below the learning wing (the import layers), so it does not read the
wing: it defines the section's shape and a provider hook, `LearningProvider`, that the
runtime fills (`copilot.learn.report.learning_sections`) when surfaces are declared.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict


class VersionPoint(BaseModel):
    """One policy version: when it was trained, its state now and when it last changed."""

    model_config = ConfigDict(frozen=True)

    version: str
    state: str
    n_train: int
    created_at: float
    updated_at: float


class Interval(BaseModel):
    """An estimate with its interval."""

    model_config = ConfigDict(frozen=True)

    value: float
    low: float
    high: float


class OpeRow(BaseModel):
    """The latest stored evidence of a surface: each estimator for candidate and current."""

    model_config = ConfigDict(frozen=True)

    evidence_hash: str
    version: str
    verdict: str
    n: int
    candidate: dict[str, Interval]  # ips, snips, dr
    current: dict[str, Interval]
    difference: Interval
    harmed: list[str]


class ArmReward(BaseModel):
    """Decisions with a final reward and their mean reward."""

    model_config = ConfigDict(frozen=True)

    n: int
    mean: float | None


class LiveVsHoldout(BaseModel):
    """The live policy's decisions against the holdout's (the rules), by mean reward.

    `difference` is live minus holdout with a normal (Welch) interval, `None` while either
    side has fewer than two rewarded decisions.
    """

    model_config = ConfigDict(frozen=True)

    policy: str
    live: ArmReward
    holdout: ArmReward
    difference: Interval | None


class ShadowRow(BaseModel):
    """The shadow version's agreement with the policy that acted."""

    model_config = ConfigDict(frozen=True)

    version: str
    scored: int
    agreed: int
    agreement: float | None


class LearningSection(BaseModel):
    """One learned surface in the report."""

    model_config = ConfigDict(frozen=True)

    surface: str
    serving: str
    versions: list[VersionPoint]
    evidence: OpeRow | None
    shadow: ShadowRow | None
    live_vs_holdout: LiveVsHoldout

    def lines(self) -> list[str]:
        """The section as the CLI prints it and the page shows it (one fact a line)."""
        out = [f"{self.surface}: serving {self.serving}"]
        for v in self.versions:
            out.append(f"  version {v.version} {v.state} n={v.n_train}")
        if self.evidence is not None:
            e = self.evidence
            for side, figures in (("candidate", e.candidate), ("current", e.current)):
                for name, x in sorted(figures.items()):
                    out.append(f"  OPE {side} {name} {x.value:.4f} [{x.low:.4f}, {x.high:.4f}]")
            d = e.difference
            out.append(f"  OPE {e.version} - current {d.value:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
                       f" verdict {e.verdict}")  # fmt: skip
        if self.shadow is not None:
            s = self.shadow
            rate = "-" if s.agreement is None else f"{s.agreement:.1%}"
            out.append(f"  shadow {s.version} agreed {s.agreed}/{s.scored} ({rate})")
        lh = self.live_vs_holdout
        diff = ("-" if lh.difference is None else
                f"{lh.difference.value:+.4f} [{lh.difference.low:+.4f}, {lh.difference.high:+.4f}]")  # fmt: skip
        out.append(f"  live {lh.policy} n={lh.live.n} vs holdout n={lh.holdout.n}: {diff}")
        return out


LearningProvider = Callable[[str], list[LearningSection]]
"""The hook: a tenant's learned surfaces (the runtime fills it from the learning wing)."""

__all__ = [
    "ArmReward",
    "Interval",
    "LearningProvider",
    "LearningSection",
    "LiveVsHoldout",
    "OpeRow",
    "ShadowRow",
    "VersionPoint",
]
