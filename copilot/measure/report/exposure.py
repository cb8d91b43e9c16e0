"""Who was exposed when, in which arm, and who converted: what every lift in the report counts.

The unit is the subject, by intent to treat: its arm is the holdout flag of its first
exposure (a workflow's first run, a placement's first decision), and it converted when a
non-zero outcome was observed at or after that exposure (within a window, when given).
"""

from __future__ import annotations

from dataclasses import dataclass

from copilot.measure.experiments import Arm, Lift, Method, lift


@dataclass(frozen=True, slots=True)
class Exposure:
    """A subject's first run in the experiment: when, which arm, which segment."""

    subject_id: str
    exposed_at: float
    holdout: bool
    segment: str


def converted_subjects(
    exposures: list[Exposure], seen: dict[str, list[float]], window: float | None
) -> set[str]:
    """Subjects with an outcome at or after their exposure (within `window` seconds, if given)."""
    hit = set()
    for e in exposures:
        end = e.exposed_at + window if window is not None else float("inf")
        if any(e.exposed_at <= at <= end for at in seen.get(e.subject_id, ())):
            hit.add(e.subject_id)
    return hit


def arms(members: list[Exposure], hit: set[str]) -> tuple[Arm, Arm]:
    """(treated, holdout) arms over `members`, counting those in `hit` as converted."""
    t = [e for e in members if not e.holdout]
    h = [e for e in members if e.holdout]
    return (
        Arm(n=len(t), successes=sum(e.subject_id in hit for e in t)),
        Arm(n=len(h), successes=sum(e.subject_id in hit for e in h)),
    )


def subject_lift(
    exposures: list[Exposure],
    converted: set[str],
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    method: Method = "newcombe",
) -> Lift | None:
    """Treated vs holdout over subjects (None when an arm is empty): the report's lift."""
    treated, held = arms(exposures, converted)
    if not treated.n or not held.n:
        return None
    return lift(treated, held, alpha=alpha, power=power, method=method)


__all__ = ["Exposure", "arms", "converted_subjects", "subject_lift"]
