"""A seeded six weeks: next-actions runs with a 20% holdout, replies, complaints, weekly activity,
and reviewer decisions, for the weekly review's tests and its page."""

from __future__ import annotations

import json
import random
import uuid

from sqlalchemy import Engine, insert

from approvals import Gate
from audit import SqlAuditStore
from copilot.db.tables import runs
from copilot.measure.outcomes import OutcomeRegistry, record_outcomes
from copilot.measure.review.weeks import WEEK, week_start
from tests.support.gate import Clock
from tests.support.kinds import CATALOG
from tests.support.measure import SHADOW

OUTCOMES = OutcomeRegistry.from_yaml(
    """
outcomes:
  - {name: replied, description: Replied to our message, polarity: good}
  - {name: active, description: Used the product that week, polarity: good}
  - {name: complained, description: Complained about a message, polarity: bad,
     guardrail: {max_increase: 0.01}}
"""
)
NOW = 1_764_000_000.0  # Monday 2025-11-24 16:00 UTC: the reviewed week is the one before
FIRST = week_start(NOW) - 6 * WEEK


def seed_weeks(
    engine: Engine, tenant: str = "acme", per_week: int = 400, seed: int = 5, now: float = NOW
) -> None:
    """Six weeks of first runs before `now`'s week; treated reply 24% vs 10%; weekly activity."""
    rng = random.Random(seed)
    first = week_start(now) - 6 * WEEK
    rows, events, decided = [], [], []
    for i in range(6 * per_week):
        subject = f"acct-{i:05d}"
        at = first + (i // per_week) * WEEK + rng.random() * (WEEK - 3600)
        held = rng.random() < 0.2
        run_id = uuid.uuid4().hex
        rows.append({"id": run_id, "tenant": tenant, "workflow": "next_actions", "version": "1",
                     "subject_id": subject, "state": "completed", "inputs": json.dumps({}),
                     "holdout": held, "triggered_by": "app:crm", "created_at": at,
                     "updated_at": at, "queued_at": at, "attempts": 1, "step_index": 2,
                     "level": None if held else rng.choice(["full", "partial", "thin"])})  # fmt: skip
        if rng.random() < (0.10 if held else 0.24):
            events.append({"subject_id": subject, "name": "replied", "observed_at": at + 3600})
        if rng.random() < 0.01:
            events.append({"subject_id": subject, "name": "complained", "observed_at": at + 7200})
        stay = 0.5 if held else 0.6
        for k in range(6):
            when = at + k * WEEK + 86400
            if when < now - 3600 and rng.random() < stay * (0.8**k):
                events.append({"subject_id": subject, "name": "active", "observed_at": when})
        if not held and i % 10 == 0:
            decided.append((run_id, subject, at))
    with engine.begin() as conn:
        conn.execute(insert(runs), rows)
    audit = SqlAuditStore(engine)
    for start in range(0, len(events), 1000):
        record_outcomes(engine, audit, OUTCOMES, tenant=tenant,
                        events=events[start : start + 1000], clock=lambda: now)  # fmt: skip
    _decide(engine, tenant, decided, rng)


def _decide(engine: Engine, tenant: str, decided: list[tuple[str, str, float]],
            rng: random.Random) -> None:  # fmt: skip
    clock = Clock()
    gate = Gate(engine, SqlAuditStore(engine), CATALOG, SHADOW, clock=clock)
    for run_id, subject, at in decided:
        clock.now = at + 10
        req = gate.submit(tenant=tenant, workflow="next_actions", kind="email_customer",
                          payload={"to": subject, "subject": "Checking in",
                                   "body": "Hello there, how is the rollout going?"},
                          confidence=0.7, level="full", triggered_by="app:crm", run_id=run_id,
                          subject_id=subject)  # fmt: skip
        clock.now += 300
        common = {"reviewer": "maya", "roles": {"reviewer"}, "payload_hash": req.payload_hash}
        roll = rng.random()
        if roll < 0.2:
            gate.decide(req.id, decision="reject", reason="Too soon after the last call", **common)
        elif roll < 0.85:
            gate.decide(req.id, decision="approve", **common)
        else:
            gate.edit(req.id, edits={"subject": "Quick question"}, **common)


PLACEMENT = "t.home"  # the seeded placement: served by logged random choices, 10% held out


def seed_placements(
    engine: Engine, tenant: str = "acme", per_week: int = 150, seed: int = 9, now: float = NOW
) -> None:
    """Six weeks of `PLACEMENT` decisions before `now`'s week, logged as a learned placement logs
    them: features `useful` (which candidate completes), `noise` (nothing) and `plan` (the
    segment), a uniform pick (propensity 0.5), then impression → accept → complete events.

    The hidden truth: the pick that matches `useful` completes 70% of the time, the other 20%.
    """
    from copilot.db.tables import placement_decisions, placement_events

    rng = random.Random(seed)
    first = week_start(now) - 6 * WEEK
    decisions, events = [], []
    for i in range(6 * per_week):
        at = first + (i // per_week) * WEEK + rng.random() * (WEEK - 7200)
        subject, held = f"p-{i:05d}", rng.random() < 0.1
        features = {"useful": rng.choice(["a", "b"]), "noise": rng.randint(0, 9),
                    "plan": rng.choice(["team", "trial"])}  # fmt: skip
        chosen = None if held else rng.choice(["alpha", "beta"])
        decision_id = f"{rng.getrandbits(128):032x}"  # seeded: the training order is too
        decisions.append({"id": decision_id, "tenant": tenant, "subject_id": subject,
                          "placement": PLACEMENT, "decided_at": at, "chosen": chosen,
                          "candidates": json.dumps(["alpha", "beta"]),
                          "features": json.dumps(features), "propensity": 1.0 if held else 0.5,
                          "policy": "rules", "version": "1", "holdout": held, "level": "full",
                          "reasons": "{}", "counted": not held, "segment": features["plan"],
                          "explanation": "{}"})  # fmt: skip
        if chosen is None:
            continue
        hit = (chosen == "alpha") == (features["useful"] == "a")
        done = rng.random() < (0.7 if hit else 0.2)
        kinds = ["impression"] + (["accept", "complete"] if done else
                                  ["dismiss"] if rng.random() < 0.5 else [])  # fmt: skip
        events += [{"tenant": tenant, "event_id": f"{decision_id}-{k}", "decision_id": decision_id,
                    "subject_id": subject, "placement": PLACEMENT, "candidate": chosen,
                    "kind": k, "at": at + 60 * (j + 1), "until": None}
                   for j, k in enumerate(kinds)]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(placement_decisions), decisions)
        conn.execute(insert(placement_events), events)
