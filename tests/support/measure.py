"""A seeded evaluation: runs with a holdout, outcomes, and reviewer decisions, counted as written."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert

from approvals import Gate, Policy
from audit import SqlAuditStore
from copilot.db.tables import runs
from copilot.measure.outcomes import OutcomeRegistry, record_outcomes
from tests.support.gate import Clock
from tests.support.kinds import CATALOG

T0 = 1_800_000_000.0
NOW = T0 + 30 * 86400
DAY = 86400.0
OUTCOMES = OutcomeRegistry.from_yaml(
    """
outcomes:
  - {name: replied, description: Replied to our message, polarity: good}
  - {name: complained, description: Complained about a message, polarity: bad,
     guardrail: {max_increase: 0.01}}
"""
)
SHADOW = Policy.from_yaml(
    """
version: shadow@1
rules:
  - id: shadow-emails
    shadow: true
    when: {kind: email_customer}
    then: {action: auto_approve, allow_customer: true}
"""
)
TIERS = [("enterprise", 0.08), ("pro", 0.42), ("free", 0.50)]


@dataclass
class Seeded:
    """What the seed wrote, counted independently of the report."""

    replied: dict[bool, list[int]] = field(default_factory=lambda: {True: [0, 0], False: [0, 0]})
    decisions: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


def seed(engine: Engine, subjects: int = 2000, rng_seed: int = 11) -> Seeded:
    """Subjects in three tiers, 20% held out; treated reply more; enterprise reviewers reject most."""
    rng = random.Random(rng_seed)
    seeded = Seeded()
    run_rows, events, people = [], [], []
    for i in range(subjects):
        tier = rng.choices([t for t, _ in TIERS], [w for _, w in TIERS])[0]
        held = rng.random() < 0.2
        run_id, subject, at = uuid.uuid4().hex, f"acct-{i:05d}", T0 + i * 60
        run_rows.append({
            "id": run_id, "tenant": "acme", "workflow": "next_actions", "version": "1",
            "subject_id": subject, "state": "skipped" if held else "completed",
            "inputs": json.dumps({"plan_tier": tier}), "holdout": held, "triggered_by": "app:crm",
            "created_at": at, "updated_at": at, "queued_at": at, "attempts": 1, "step_index": 2,
            "level": None if held else rng.choice(["full", "partial"]),
        })  # fmt: skip
        replied = rng.random() < (0.10 if held else 0.19)
        seeded.replied[held][0] += 1
        seeded.replied[held][1] += replied
        if replied:
            events.append({"subject_id": subject, "name": "replied", "observed_at": at + 2 * DAY})
        elif rng.random() < 0.3:  # replied before the run, or long after: not an effect here
            when = at - DAY if rng.random() < 0.5 else at + 20 * DAY
            events.append({"subject_id": subject, "name": "replied", "observed_at": when})
        if rng.random() < 0.01:
            events.append({"subject_id": subject, "name": "complained", "observed_at": at + DAY})
        if not held and i % 8 == 0:
            people.append((run_rows[-1], tier))
    with engine.begin() as conn:
        conn.execute(insert(runs), run_rows)
    for start in range(0, len(events), 1000):
        record_outcomes(engine, SqlAuditStore(engine), OUTCOMES, tenant="acme",
                        events=events[start : start + 1000], clock=lambda: NOW)  # fmt: skip
    _review(engine, people, rng, seeded)
    return seeded


def _review(engine: Engine, people: list[Any], rng: random.Random, seeded: Seeded) -> None:
    clock = Clock()
    gate = Gate(engine, SqlAuditStore(engine), CATALOG, SHADOW, clock=clock)
    reasons = {"inaccurate": "Wrong account owner", "timing": "Too soon after the last call",
               "other": "meh"}  # fmt: skip
    for run, tier in people:
        clock.now = run["created_at"] + 10
        req = gate.submit(tenant="acme", workflow="next_actions", kind="email_customer",
                          payload={"to": run["subject_id"], "subject": "Checking in",
                                   "body": "Hello there, how is the rollout going?"},
                          confidence=0.7, level=run["level"], triggered_by="app:crm",
                          run_id=run["id"], subject_id=run["subject_id"])  # fmt: skip
        clock.now += 120  # every decision takes two minutes
        roll = rng.random()
        counts = seeded.decisions.setdefault(tier, {"approved": 0, "edited": 0, "rejected": 0})
        common = {"reviewer": "maya", "roles": {"reviewer"}, "payload_hash": req.payload_hash}
        if roll < (0.7 if tier == "enterprise" else 0.1):
            category = rng.choice(sorted(reasons))
            gate.decide(req.id, decision="reject", reason=reasons[category], **common)
            counts["rejected"] += 1
            seeded.reasons[category] = seeded.reasons.get(category, 0) + 1
        elif roll < 0.85:
            gate.decide(req.id, decision="approve", **common)
            counts["approved"] += 1
        else:
            gate.edit(req.id, edits={"subject": "Quick question"}, **common)
            counts["edited"] += 1
