"""Every rule a decide applies, as one pure function over the subject's state.

`evaluate` lists each candidate with everything that excludes it (consent, holdout, thin
context, eligibility, completed, dismissed, snoozed, cooldown, the daily cap), so decide
and "why not shown" can never disagree: decide hands the policy exactly the candidates
this leaves eligible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from copilot.governance.consent import Preferences
from copilot.governance.sources import SignalValue
from copilot.placements.model import Caps, Placement, PlacementCandidate, PriorityClass
from copilot.workflow.degradation import Degradation, Level, assess

DAY = 86_400.0
THIN = (Level.THIN, Level.NONE)
# When nothing is shown, the one reason reported is the first of these that applies.
WHY_ORDER = ("consent", "holdout", "rollout_paused", "snoozed_until", "thin_context", "cap", "cooldown_until",
             "dismissed_until", "completed", "eligibility")  # fmt: skip


@dataclass(frozen=True)
class PastEvent:
    """An exposure event as the rules read it."""

    placement: str
    candidate: str
    kind: str
    at: float
    until: float | None = None


@dataclass(frozen=True)
class SubjectState:
    """What the rules read about one subject, inside the decide's transaction."""

    prefs: Preferences
    values: Mapping[str, SignalValue]
    shown: Sequence[tuple[str, float]] = ()  # (placement, decided_at) of counted decisions
    events: Sequence[PastEvent] = ()


@dataclass
class Evaluation:
    """Each candidate's exclusions, the degradation, and the features as seen."""

    degradation: Degradation
    excluded: dict[str, list[str]] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)

    def eligible(self, placement: Placement) -> list[PlacementCandidate]:
        """Candidates nothing excluded, in declaration order."""
        return [c for c in placement.candidates if not self.excluded[c.id]]

    def why(self) -> str:
        """The reason nothing could be shown (the first of WHY_ORDER that applies)."""
        found = [r for reasons in self.excluded.values() for r in reasons]
        for prefix in WHY_ORDER:
            hit = next((r for r in found if r.startswith(prefix)), None)
            if hit is not None:
                return hit
        return "no_eligible_candidate"


def iso(ts: float) -> str:
    """UTC, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def features_of(placement: Placement, values: Mapping[str, SignalValue]) -> dict[str, Any]:
    """The declared signals' values as the policy sees them (nothing undeclared)."""
    return {n: values[n].value for n in placement.signal_names if n in values}


def evaluate(
    placement: Placement,
    state: SubjectState,
    *,
    now: float,
    held: bool,
    caps: Caps,
    classes: Mapping[str, PriorityClass],
    paused: bool = False,
) -> Evaluation:
    """Apply every rule to every candidate of `placement` for the subject now.

    `paused`: a stop rule paused the placement (copilot.measure.rollout): it serves
    control, as to its holdout, until an admin resumes it.
    """
    deg = assess(placement.signals, state.values, now)
    out = Evaluation(degradation=deg, features=features_of(placement, state.values))
    common = _placement_wide(placement, state, now=now, held=held)
    if paused:
        common.append("rollout_paused")
    budget = _budget(placement, state, now=now, caps=caps)
    for c in placement.candidates:
        reasons = list(common)
        if deg.level in THIN and c.id != placement.thin_default:
            reasons.append(f"thin_context:{deg.level.value}")
        reasons += _conditions(c, out.features)
        reasons += _history(placement, c, state.events, now)
        if not classes[c.priority].bypass_caps:
            reasons += budget
        out.excluded[c.id] = reasons
    return out


def _placement_wide(
    placement: Placement, state: SubjectState, *, now: float, held: bool
) -> list[str]:
    reasons = []
    refusal = state.prefs.refusal(placement.name, now)
    if refusal is not None:
        reasons.append(f"consent:{refusal}")
    if held:
        reasons.append("holdout")
    snoozes = [e.until for e in state.events
               if e.placement == placement.name and e.kind == "snooze" and (e.until or 0) > now]  # fmt: skip
    if snoozes:
        reasons.append(f"snoozed_until:{iso(max(u for u in snoozes if u is not None))}")
    return reasons


def _budget(placement: Placement, state: SubjectState, *, now: float, caps: Caps) -> list[str]:
    reasons = []
    cooldown = placement.cooldown.total_seconds()
    last = max((at for name, at in state.shown if name == placement.name), default=None)
    if cooldown and last is not None and last + cooldown > now:
        reasons.append(f"cooldown_until:{iso(last + cooldown)}")
    today = sum(1 for _, at in state.shown if at > now - DAY)
    if today >= caps.per_day:
        reasons.append(f"cap:per_day:{caps.per_day}")
    return reasons


def _conditions(c: PlacementCandidate, features: Mapping[str, Any]) -> list[str]:
    out = []
    for cond in c.when:
        if cond.signal not in features:
            out.append(f"eligibility:missing:{cond.signal}")
        elif not cond.holds(features[cond.signal]):
            out.append(f"eligibility:{cond}")
    return out


def _history(
    placement: Placement, c: PlacementCandidate, events: Sequence[PastEvent], now: float
) -> list[str]:
    mine = [e for e in events if e.placement == placement.name and e.candidate == c.id]
    out = []
    if any(e.kind == "complete" for e in mine):
        out.append("completed")
    window = placement.dismiss_for.total_seconds()
    dismissed = [e.at + window for e in mine if e.kind == "dismiss" and e.at + window > now]
    if dismissed:
        out.append(f"dismissed_until:{iso(max(dismissed))}")
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "age unknown"
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} old"
    return "just now"


def sentence(
    placement: Placement,
    chosen: PlacementCandidate | None,
    ev: Evaluation,
    *,
    policy: str,
    why: str | None,
) -> str:
    """ "Why am I seeing this?" in one sentence: signals and their age, rule, level, opt-out."""
    opt_out = (f"dismiss it, snooze it, or opt out of {placement.name} (or of all guidance) "
               "in your preferences")  # fmt: skip
    level = ev.degradation.level.value
    if chosen is None:
        return f"Nothing is shown in {placement.name} ({why}; context {level})."
    used = {cond.signal for cond in chosen.when} or set(placement.signal_names)
    ages = [f"{u.name} ({_age(u.age_seconds)})" for u in ev.degradation.signals
            if u.name in used and u.present]  # fmt: skip
    title = chosen.content.get("title", chosen.id)
    because = f"your {', '.join(ages)}" if ages else "no signals about you"
    return (f"You see \u201c{title}\u201d because {because} matched the rule "
            f"\u201c{chosen.rule_name}\u201d ({policy}, {level} context); to stop these, {opt_out}.")  # fmt: skip


__all__ = ["Evaluation", "PastEvent", "SubjectState", "evaluate", "features_of", "iso", "sentence"]
