"""A learning surface for runtime-level tests: its YAML and seeded decisions with verdicts.

The decisions are those of an exploring logger over the simulator's world (the same world
the gate tests use), ending five days ago so every reward window has closed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from copilot.learn.model import empty_artifact
from copilot.learn.policy import LearnedPolicy
from copilot.learn.rewards import Feedback
from copilot.learn.store import LearnStore
from copilot.ranking import PolicyInput
from tests.support.simulator import CANDIDATES, PRIORITY, Simulator, candidates, logged

SURFACE = "onboarding"
LEARN_YAML = f"""
surfaces:
  {SURFACE}:
    candidates:
{chr(10).join(f'      - {{id: {c}, priority: {PRIORITY[c]}}}' for c in CANDIDATES)}
rewards: {{window: 86400}}
training: {{gamma_scale: 3.0}}
evidence: {{margin: 0.01}}
lookback_days: 30
"""


def learn_file(home: Path) -> Path:
    """The surface's declarations in `home` (pass as `learn_path`)."""
    path = home / "learn.yaml"
    path.write_text(LEARN_YAML)
    return path


def seed(store: LearnStore, tenant: str, n: int, *, seed_: int = 21) -> None:
    """n logged decisions of `tenant` on the surface, reviewer verdicts joined."""
    sim = Simulator(seed_)
    ctx = sim.contexts(n)
    logger = LearnedPolicy(empty_artifact(SURFACE, 0.15))
    chosen = np.zeros(n, np.int64)
    propensity = np.zeros(n)
    for i in range(n):
        request = PolicyInput(surface=SURFACE, subject_id=f"s{i}", features=ctx.features(i),
                              eligible=candidates())  # fmt: skip
        choice = logger.choose(request, float(sim.rng.random()))
        chosen[i] = CANDIDATES.index(choice.candidate_id or "")
        propensity[i] = choice.probability
    _, delay, verdict = sim.outcomes(ctx, chosen)
    start = time.time() - 5 * 86400 - n * 10.0
    decisions = [d.model_copy(update={"tenant": tenant})
                 for d in logged(ctx, chosen, propensity, None, start=start, prefix=f"{tenant}-")]  # fmt: skip
    store.log_decisions(decisions)
    store.add_feedback(tenant, [
        Feedback(decision_id=d.decision_id, source="reviewer", event=str(verdict[i]),
                 at=d.decided_at + float(delay[i]),
                 edit_distance=0.3 if verdict[i] == "edit" else None,
                 reason="wrong account" if verdict[i] == "reject" else None)
        for i, d in enumerate(decisions)
    ])  # fmt: skip
