"""The degradation ladder: how much a run knows, what it may do with that, and why.

    full     enough fresh signals: the model path, every action kind the workflow declares
    partial  some missing or stale, or the model is unavailable or failed: flagged, lower
             confidence, restricted actions
    thin     a required signal missing or little coverage: rules and templates, internal
             actions only
    none     nothing to go on: the run is skipped, with the reason

Reason codes are machine-readable and stable: `missing:<signal>`, `stale:<signal>`,
`no_signals`, `model_unavailable`, `model_timeout`, `model_rate_limited`, `model_error`,
`model_invalid_output`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from copilot.governance.sources import SignalValue
from copilot.workflow.definition import SignalNeed


class Level(StrEnum):
    """A rung of the ladder, best first."""

    FULL = "full"
    PARTIAL = "partial"
    THIN = "thin"
    NONE = "none"

    @property
    def rank(self) -> int:
        """0 for full ... 3 for none."""
        return list(Level).index(self)


# Reasons that mean the model's output was not used (the rules path stood in).
FALLBACK_REASONS = frozenset({"model_unavailable", "model_timeout", "model_rate_limited",
                              "model_error", "model_invalid_output", "model_ungrounded"})  # fmt: skip
CONFIDENCE_CAP = {Level.FULL: 1.0, Level.PARTIAL: 0.75, Level.THIN: 0.5, Level.NONE: 0.0}
FULL_COVERAGE = 0.8
PARTIAL_COVERAGE = 0.5


class SignalUse(BaseModel):
    """How one declared signal stood when the run looked: present, fresh, how old."""

    model_config = ConfigDict(frozen=True)

    name: str
    weight: float
    required: bool
    present: bool
    fresh: bool
    observed_at: float | None = None
    age_seconds: float | None = None


class Degradation(BaseModel):
    """Level, reasons and coverage of one run."""

    model_config = ConfigDict(frozen=True)

    level: Level
    reasons: tuple[str, ...] = ()
    coverage: float = 1.0
    signals: tuple[SignalUse, ...] = ()

    def worse(self, level: Level, reason: str) -> Degradation:
        """This degradation, at least as bad as `level`, with `reason` added."""
        new = level if level.rank > self.level.rank else self.level
        reasons = self.reasons if reason in self.reasons else (*self.reasons, reason)
        return self.model_copy(update={"level": new, "reasons": reasons})

    def cap(self, confidence: float) -> float:
        """A confidence no higher than this level allows."""
        return round(min(confidence, CONFIDENCE_CAP[self.level]), 3)


def assess(
    needs: Sequence[SignalNeed], values: Mapping[str, SignalValue], now: float
) -> Degradation:
    """Score the signals a workflow needs against what the context holds."""
    uses: list[SignalUse] = []
    reasons: list[str] = []
    needs = [n for n in needs if not (n.conditional and n.name not in values)]
    total = sum(n.weight for n in needs)
    score = 0.0
    required_short = False
    for need in needs:
        value = values.get(need.name)
        if value is None:
            uses.append(
                SignalUse(
                    name=need.name,
                    weight=need.weight,
                    required=need.required,
                    present=False,
                    fresh=False,
                )
            )
            reasons.append(f"missing:{need.name}")
            required_short |= need.required
            continue
        age = max(0.0, now - value.observed_at)
        fresh = age <= need.freshness.total_seconds()
        uses.append(
            SignalUse(
                name=need.name,
                weight=need.weight,
                required=need.required,
                present=True,
                fresh=fresh,
                observed_at=value.observed_at,
                age_seconds=round(age, 3),
            )
        )
        if fresh:
            score += need.weight
        else:
            reasons.append(f"stale:{need.name}")
            required_short |= need.required
    coverage = score / total if total else 1.0
    if needs and score == 0:
        level = Level.NONE
        reasons.append("no_signals")
    elif required_short or coverage < PARTIAL_COVERAGE:
        level = Level.THIN
    elif coverage < FULL_COVERAGE or reasons:
        level = Level.PARTIAL
    else:
        level = Level.FULL
    return Degradation(
        level=level, reasons=tuple(reasons), coverage=round(coverage, 3), signals=tuple(uses)
    )


class Explanation(BaseModel):
    """ "Why am I seeing this?": one sentence, the evidence, the method, and how to opt out."""

    model_config = ConfigDict(frozen=True)

    why: str
    method: str
    level: Level
    reasons: tuple[str, ...]
    confidence: float
    signals: tuple[SignalUse, ...]
    model: str | None = None
    prompt_version: str | None = None
    opt_out: str = ""
