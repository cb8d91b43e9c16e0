"""The learning loop on an embedded SQLite file: log, join rewards, train, evaluate, promote."""

import tempfile
from pathlib import Path

import numpy as np

from audit import SqlAuditStore
from audit.db import create_engine
from copilot import upgrade
from copilot.learn import (
    EvidenceConfig,
    Feedback,
    LearnedPolicy,
    Learning,
    LearnStore,
    RewardSpec,
    empty_artifact,
)
from copilot.ranking import Candidate, LoggedDecision, PolicyInput

home = Path(tempfile.mkdtemp())
engine = create_engine(f"sqlite:///{home}/copilot.db")
upgrade(engine)
store = LearnStore(engine, SqlAuditStore(engine))
offers = [Candidate(id="checklist", priority=2), Candidate(id="tour", priority=1, order=1)]
learning = Learning(store, rewards=RewardSpec(window=86400), catalogs={"onboarding": offers},
                    evidence=EvidenceConfig(margin=0.01), lookback=30 * 86400)

# 1. Decisions logged by the rules with an exploration floor, reviewers' verdicts joined.
rng = np.random.default_rng(1)
logger = LearnedPolicy(empty_artifact("onboarding", floor=0.2))
now = 1_800_000_000.0
decisions, feedback = [], []
for i in range(600):
    usage = float(rng.normal())
    request = PolicyInput(surface="onboarding", subject_id=f"s{i}",
                          features={"usage": usage}, eligible=offers)
    choice = logger.choose(request, float(rng.random()))
    at = now - 20 * 86400 + i * 1800
    decisions.append(LoggedDecision(
        decision_id=f"d{i}", tenant="acme", surface="onboarding", subject_id=f"s{i}",
        decided_at=at, features={"usage": usage}, candidates=["checklist", "tour"],
        chosen=choice.candidate_id, propensity=choice.probability, policy=choice.policy,
        version=choice.version))
    likes_tour = usage > 0  # the hidden rule reviewers follow
    approved = (choice.candidate_id == "tour") == likes_tour
    feedback.append(Feedback(decision_id=f"d{i}", source="reviewer", at=at + 3600,
                             event="approve" if approved else "reject",
                             reason=None if approved else "not relevant"))
with engine.begin() as conn:  # one transaction for the batch
    for d in decisions:
        store.log_decision(d, conn=conn)
store.add_feedback("acme", feedback)

# 2. Train (the version starts in shadow), then the evidence against the rules.
version = learning.train("acme", "onboarding", now=now)
document, digest = learning.evaluate("acme", "onboarding", version.version, now=now)
d = document["difference"]
print(f"trained {version.version} on {version.n_train} decisions")
print(f"DR difference vs rules {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
      f" -> {document['verdict']}")

# 3. Promotion: filed for two admins; the second approval puts it live.
request = learning.request_promotion("acme", "onboarding", version.version,
                                     requested_by="alice", now=now)
for admin in ("carol", "dave"):
    request = learning.promotions.decide(request.id, admin=admin, roles={"admin"}, approve=True)
print("promotion", request.status, "->", learning.status("acme", "onboarding")["serving"])
