"""The demo's onboarding journey: decisions for the synthetic accounts, their events, the outcome.

Each account gets onboarding signals drawn from its id (deterministic), then asks every
placement of the built-in journey what to show. A simulated person sees the item
(impression), accepts some, completes some of those, dismisses others (and sees the next
step). Activation is drawn with a higher chance for accounts that completed a step, so
the report's lift over each placement's holdout has something to find: it is a demo.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from typing import Any

from rich.progress import Progress

from audit import Actor
from copilot.cli.context import Env
from copilot.measure.outcomes import record_outcomes
from copilot.placements import Decision, EventIn, PlacementRegistry
from copilot.placements import onboarding as journey

MODULE = "copilot.placements.onboarding"
ACTOR = Actor.system("demo-app")


def enable(env: Env) -> None:
    """Add the built-in journey (and its signals and outcome) unless the settings name it."""
    if any(p.name == journey.NEXT_STEP for p in env.placements):
        return
    env.registry.register_module(MODULE)
    found = PlacementRegistry()
    found.register_module(MODULE)
    found.merge(env.placements)
    found.check(env.registry.signals)
    env.placements = found  # before the decider is built from it (a cached part)


def profile(subject_id: str) -> dict[str, Any]:
    """An account's onboarding signals, drawn from its id."""
    rng = random.Random(hashlib.sha256(subject_id.encode()).digest())
    return {
        "onboarding.steps_done": rng.randint(0, 4), "onboarding.has_data": rng.random() < 0.4,
        "onboarding.teammates": rng.choice([0, 0, 1, 3]),
        "onboarding.plan": rng.choice(["trial", "trial", "team", "enterprise"]),
        "onboarding.trial_days_left": rng.randint(0, 14), "onboarding.sessions": rng.randint(1, 6),
        "onboarding.mfa": rng.random() < 0.6,
    }  # fmt: skip


def run(env: Env, tenant: str, subjects: list[str], batch: str, progress: Progress) -> Counter[str]:
    """Decide, act and record the outcome for every subject; counts of what happened."""
    enable(env)
    task = progress.add_task("onboarding journey", total=len(subjects))
    done: Counter[str] = Counter()
    activated = []
    for subject in subjects:
        env.registry.signals.ingest(env.engine, env.audit, tenant=tenant, subject_id=subject,
                                    values=profile(subject), source="demo-app",
                                    observed_at=time.time() - 600)  # fmt: skip
        rng = random.Random(f"{batch}:{subject}")
        completed = _next_steps(env, tenant, subject, batch, rng, done)
        for name in (journey.BILLING_TIP, journey.TOUR, journey.SECURITY):
            d = env.decider.decide(tenant, name, subject, actor=ACTOR)
            _event(env, tenant, d, "impression", batch, done)
        if rng.random() < (0.45 if completed else 0.25):
            activated.append({"subject_id": subject, "name": journey.activated.name})
        progress.advance(task)
    if activated:
        record_outcomes(env.engine, env.audit, env.registry.outcomes, tenant=tenant,
                        events=activated, source="demo-app")  # fmt: skip
    done["activated"] = len(activated)
    return done


def _next_steps(env: Env, tenant: str, subject: str, batch: str, rng: random.Random,
                done: Counter[str]) -> bool:  # fmt: skip
    """Show the next step up to twice (a dismiss moves on); whether one was completed."""
    for _ in range(2):
        d = env.decider.decide(tenant, journey.NEXT_STEP, subject, actor=ACTOR)
        done["holdout" if d.holdout else "decisions"] += 1
        if d.item is None:
            return False
        _event(env, tenant, d, "impression", batch, done)
        roll = rng.random()
        if roll < 0.45:
            _event(env, tenant, d, "accept", batch, done)
            if rng.random() < 0.6:
                _event(env, tenant, d, "complete", batch, done)
                return True
            return False
        if roll > 0.75:
            return False  # ignored
        _event(env, tenant, d, "dismiss", batch, done)
    return False


def _event(env: Env, tenant: str, d: Decision, kind: str, batch: str, done: Counter[str]) -> None:
    if d.item is None:
        return
    event = EventIn(event_id=f"demo-{batch}-{d.decision_id}-{kind}", kind=kind)
    env.placement_events.record(tenant, d.decision_id, event, actor=ACTOR)
    done[kind] += 1
