"""The learning loop over HTTP: an admin trains, reads the evidence, files the promotion,
two distinct admins approve it, and the report shows the learned surface."""

import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from audit import Actor
from copilot.db.engines import upgrade
from copilot.learn import Feedback, LearnedPolicy, empty_artifact
from copilot.measure.report.build import build_report
from copilot.ranking import Candidate, LoggedDecision, PolicyInput
from copilot.runtime import Runtime
from copilot.server import create_app
from copilot.settings import Settings

home = Path(tempfile.mkdtemp())
(home / "learn.yaml").write_text("""
surfaces:
  onboarding:
    candidates: [{id: checklist, priority: 2}, {id: tour, priority: 1}]
rewards: {window: 86400}
evidence: {margin: 0.01}
""")
rt = Runtime(Settings(database_url=f"sqlite:///{home}/copilot.db", home=home,
                      learn_path=home / "learn.yaml"))
upgrade(rt.engine)

# Decisions of an exploring logger, reviewers' verdicts joined (as in loop.py).
rng = np.random.default_rng(1)
offers = [Candidate(id="checklist", priority=2), Candidate(id="tour", priority=1, order=1)]
logger = LearnedPolicy(empty_artifact("onboarding", floor=0.2))
start = time.time() - 20 * 86400
decisions, feedback = [], []
for i in range(600):
    usage = float(rng.normal())
    choice = logger.choose(PolicyInput(surface="onboarding", subject_id=f"s{i}",
                                       features={"usage": usage}, eligible=offers),
                           float(rng.random()))
    at = start + i * 1800
    decisions.append(LoggedDecision(
        decision_id=f"d{i}", tenant="acme", surface="onboarding", subject_id=f"s{i}",
        decided_at=at, features={"usage": usage}, candidates=["checklist", "tour"],
        chosen=choice.candidate_id, propensity=choice.probability, policy=choice.policy,
        version=choice.version))
    approved = (choice.candidate_id == "tour") == (usage > 0)  # the reviewers' hidden rule
    feedback.append(Feedback(decision_id=f"d{i}", source="reviewer", at=at + 3600,
                             event="approve" if approved else "reject",
                             reason=None if approved else "not relevant"))
rt.learning.store.log_decisions(decisions)
rt.learning.store.add_feedback("acme", feedback)

# Three admin keys of tenant acme: alice requests, two others approve.
admins = []
for name in ("alice", "carol", "dave"):
    _, token = rt.keys.create(tenant="acme", roles=["admin"], name=name, actor=Actor.system("setup"))
    admins.append({"Authorization": f"Bearer {token}"})

with TestClient(create_app(rt.settings, runtime=rt)) as http:
    version = http.post("/v1/learn/onboarding/train", headers=admins[0]).json()["version"]
    evidence = http.get(f"/v1/learn/onboarding/versions/{version}/evidence",
                        headers=admins[0]).json()
    d = evidence["difference"]
    print(f"DR difference {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
          f" -> {evidence['verdict']}")
    promotion = http.post(f"/v1/learn/onboarding/versions/{version}/promotion",
                          headers=admins[0]).json()
    # Two distinct admins other than the requester: the requester's own vote is
    # `approval.separation_of_duties`, the same admin twice `approval.forbidden`.
    for admin in admins[1:]:
        r = http.post(f"/v1/learn/promotions/{promotion['id']}/decision", headers=admin,
                      json={"decision": "approve"})
    assert r.json()["status"] == "approved", r.json()
    print("promotion", r.json()["status"], "->",
          http.get("/v1/learn/onboarding", headers=admins[0]).json()["serving"])

report = build_report(rt.engine, tenant="acme", outcomes=rt.registry.outcomes,
                      learning=rt.learning_provider)
print("\n".join(report.learning[0].lines()))
