"""Decide in process with the built-in onboarding journey, on a throwaway SQLite database."""

from __future__ import annotations

import tempfile
from pathlib import Path

from audit import Actor
from copilot import Settings, upgrade
from copilot.placements import EventIn
from copilot.runtime import Runtime

home = Path(tempfile.mkdtemp())
rt = Runtime(Settings(home=home, placement_modules="copilot.placements.onboarding"))
upgrade(rt.engine)  # `copilot db upgrade`
NEXT = "onboarding.next_step"
context = {"onboarding.steps_done": 0, "onboarding.has_data": False,
           "onboarding.teammates": 0, "onboarding.plan": "trial"}  # fmt: skip

# 10% of subjects are held out of this placement (they get the app's default); take one that is not.
subject = next(s for s in (f"acct-{i}" for i in range(100)) if not rt.decider.held(rt.placements.get(NEXT), s))

first = rt.decider.decide("acme", NEXT, subject, context)
assert first.item is not None
print(first.item.id, "|", first.explanation)

app = Actor.system("my-app")
rt.placement_events.record("acme", first.decision_id, EventIn(event_id="ev-1", kind="impression"), actor=app)
rt.placement_events.record("acme", first.decision_id, EventIn(event_id="ev-2", kind="dismiss"), actor=app)

second = rt.decider.decide("acme", NEXT, subject, context)  # the dismiss is honoured
assert second.item is not None and second.item.id != first.item.id
print(second.item.id, second.policy, second.version, second.probability)

for c in rt.decider.explain("acme", NEXT, subject, context).candidates:  # "why not shown"
    print(f"  {c.id}: {'eligible' if c.eligible else ', '.join(c.excluded_by)}")

rt.audit.settle("acme")
print(rt.trail.verify("acme").line())  # the decision log is the audit trail
rt.close()
