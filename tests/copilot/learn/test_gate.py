"""The evidence gate on SQLite and PostgreSQL: shadow, promotion by two admins, demotion, trail."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from approvals import ApprovalForbiddenError
from audit import Actor, Query, SqlAuditStore, Trail
from copilot.db.engines import upgrade
from copilot.learn import NotBetterError, SegmentHarmedError
from copilot.learn.evidence import EvidenceConfig
from copilot.learn.model import CandidateModel, empty_artifact
from copilot.learn.policy import LearnedPolicy
from copilot.learn.rewards import Feedback, RewardSpec
from copilot.learn.service import Learning
from copilot.learn.store import LearnStore
from copilot.learn.train import TrainConfig
from copilot.measure.guardrails import Guardrail
from copilot.ranking import LoggedDecision, PolicyInput
from tests.support.simulator import CANDIDATES, STEP, WINDOW, Simulator, candidates, logged

TENANT = "t1"
SURFACE = "onboarding"


class Clock:
    """Simulated time the store and the gate read."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Told:
    """A notifier that keeps what it was told."""

    def __init__(self) -> None:
        self.demoted: list[tuple[str, str, str, str]] = []

    def policy_demoted(self, tenant: str, surface: str, version: str, reason: str) -> None:
        self.demoted.append((tenant, surface, version, reason))


@pytest.fixture
def world(engine: Engine) -> Iterator[tuple[Learning, Clock, Told]]:
    """2,000 decisions logged by an exploring rules policy, reviewer verdicts joined."""
    clock = Clock()
    store = LearnStore(engine, SqlAuditStore(engine), clock=clock)
    told = Told()
    learning = Learning(
        store, rewards=RewardSpec(window=WINDOW), training=TrainConfig(gamma_scale=3.0),
        evidence=EvidenceConfig(margin=0.01), catalogs={SURFACE: candidates()},
        guardrails=[Guardrail(metric="complaint", max_increase=0.02)], holdout_share=0.2,
        lookback=10 * WINDOW, notifier=told, clock=clock,
    )  # fmt: skip
    n = 2000
    sim = Simulator(21)
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
    start = clock.now
    decisions = logged(ctx, chosen, propensity, None, start=start)
    store.log_decisions(decisions)
    store.add_feedback(TENANT, [
        Feedback(decision_id=d.decision_id, source="reviewer", event=str(verdict[i]),
                 at=d.decided_at + float(delay[i]),
                 edit_distance=0.3 if verdict[i] == "edit" else None,
                 reason="wrong account" if verdict[i] == "reject" else None)
        for i, d in enumerate(decisions)
    ])  # fmt: skip
    clock.now = start + n * STEP + WINDOW  # every window has closed
    yield learning, clock, told


def _harming(learning: Learning, version: str) -> str:
    """A copy of `version` that sends enterprise accounts to `webinar`, which they like least."""
    artifact = learning.store.artifact(TENANT, SURFACE, version)
    column = artifact.spec.names.index("segment=enterprise")
    webinar = artifact.models["webinar"]
    weights = list(webinar.weights)
    weights[column] += 5.0
    models = {**artifact.models, "webinar": CandidateModel(weights=tuple(weights), n=webinar.n)}
    worse = artifact.model_copy(update={"models": models})
    return learning.store.save(TENANT, worse, actor=Actor.human("mallory")).version


def test_promotion_needs_evidence_and_two_distinct_admins_and_a_breach_demotes(
    world: tuple[Learning, Clock, Told],
) -> None:
    learning, clock, told = world
    store = learning.store
    good = learning.train(TENANT, SURFACE)
    assert good.state == "shadow" and store.serving(TENANT, SURFACE).name == "rules"
    # Retraining on the same window is reproducible: the same version, stored once.
    assert learning.train(TENANT, SURFACE).version == good.version
    assert len(store.versions(TENANT, SURFACE)) == 1

    # A candidate that is better overall but harms the small enterprise segment is refused.
    clock.now += 1
    harmful = _harming(learning, good.version)
    with pytest.raises(SegmentHarmedError) as harmed:
        learning.request_promotion(TENANT, SURFACE, harmful, requested_by="alice")
    assert harmed.value.code == "learn.segment_harmed"
    assert harmed.value.details["harmed"] == ["enterprise"]
    assert harmed.value.details["difference"]["low"] > 0  # better overall, still refused

    # The good one is filed for two admins, carrying its evidence's hash.
    request = learning.request_promotion(TENANT, SURFACE, good.version, requested_by="alice")
    assert (request.kind, request.required_n, request.role) == ("promote_policy", 2, "admin")
    evidence = store.evidence(TENANT, request.payload["evidence_hash"])
    assert evidence["verdict"] == "ok" and evidence["difference"]["low"] > 0.01
    assert set(evidence["candidate"]["estimates"]) == {"ips", "snips", "dr"}
    gate = learning.promotions
    with pytest.raises(ApprovalForbiddenError):
        gate.decide(request.id, admin="carol", roles={"reviewer"}, approve=True)
    half = gate.decide(request.id, admin="carol", roles={"admin"}, approve=True)
    assert half.status == "pending"
    with pytest.raises(ApprovalForbiddenError, match="counts once"):
        gate.decide(request.id, admin="carol", roles={"admin"}, approve=True)
    assert store.serving(TENANT, SURFACE).name == "rules"  # one admin is not enough
    done = gate.decide(request.id, admin="dave", roles={"admin"}, approve=True)
    assert done.status == "approved"
    assert store.get(TENANT, SURFACE, good.version).state == "live"
    assert store.serving(TENANT, SURFACE).version == good.version

    # A version no better than the live one (a retrain that changes no decision) is refused.
    learning.training = TrainConfig(gamma_scale=3.0, min_samples=31)
    clock.now += 1
    twin = learning.train(TENANT, SURFACE)
    assert twin.version != good.version
    with pytest.raises(NotBetterError) as same:
        learning.request_promotion(TENANT, SURFACE, twin.version, requested_by="alice")
    assert same.value.code == "learn.not_better"

    # Shadow: the twin scores beside the live policy on new decisions and acts on nothing.
    sim = Simulator(99)
    ctx = sim.contexts(150)
    made = []
    for i in range(150):
        request_i = PolicyInput(surface=SURFACE, subject_id=f"n{i}", features=ctx.features(i),
                                eligible=candidates())  # fmt: skip
        choice = learning.decide(TENANT, request_i, decision_id=f"n{i:05d}", draw=float(i) / 150)
        made.append(choice)
    status = learning.status(TENANT, SURFACE)
    assert status["serving"] == f"learned@{good.version}"
    assert status["shadow"]["version"] == twin.version and status["shadow"]["scored"] == 150
    assert 0.5 < status["shadow"]["agreement"] <= 1.0
    assert {c.version for c in made} == {good.version, "1"}  # live, and the rules in the holdout

    # Complaints on the live policy's decisions, none in the holdout: a breach demotes it.
    live = [d for d in store.decisions(TENANT, SURFACE, clock.now - 1, clock.now + 1)
            if not d.holdout]  # fmt: skip
    store.add_feedback(TENANT, [Feedback(decision_id=d.decision_id, source="guardrail",
                                         event="complaint", at=clock.now)
                                for d in live[: len(live) // 4]])  # fmt: skip
    checks = learning.check_guardrails(TENANT, SURFACE, now=clock.now + 1)
    assert next(c.status for c in checks if c.metric == "complaint") == "breach"
    assert store.get(TENANT, SURFACE, good.version).state == "demoted"
    assert store.serving(TENANT, SURFACE).name == "rules"
    assert told.demoted and told.demoted[0][2] == good.version

    # Every step is in the trail, and the trail verifies.
    audit = SqlAuditStore(store.engine)
    events = [e.event_type for e in audit.query(TENANT, Query(limit=1000))]
    for expected in ("learn.trained", "learn.promotion_refused", "learn.promotion_requested",
                     "approval.vote", "approval.approved", "learn.promoted", "learn.demoted"):  # fmt: skip
        assert expected in events, expected
    verdict = Trail(audit).verify(TENANT)  # what `copilot audit verify` runs (the CLI test runs it)
    assert verdict.bad_seq is None and verdict.entries == len(events), verdict


class ListLog:
    """A `DecisionLog` over lists: the adapter point another decision log implements."""

    def __init__(self, decisions: list[LoggedDecision], feedback: list[Feedback]) -> None:
        self._decisions, self._feedback = decisions, feedback

    def decisions(self, tenant: str, surface: str, since: float, until: float) -> list[LoggedDecision]:
        return [d for d in self._decisions if since <= d.decided_at < until]

    def feedback(self, tenant: str, decision_ids: Sequence[str]) -> list[Feedback]:
        wanted = set(decision_ids)
        return [f for f in self._feedback if f.decision_id in wanted]


def test_training_reads_any_decision_log_and_never_trains_on_the_holdout(engine: Engine) -> None:
    sim = Simulator(4)
    n = 800
    ctx = sim.contexts(n)
    chosen = sim.rng.choice(len(CANDIDATES), size=n)
    base = logged(ctx, chosen, np.full(n, 0.25), None)
    decisions = [d.model_copy(update={"holdout": i % 4 == 0}) for i, d in enumerate(base)]
    feedback = [Feedback(decision_id=d.decision_id, source="reviewer", event="approve",
                         at=d.decided_at + 60) for d in decisions]  # fmt: skip
    learning = Learning(LearnStore(engine, SqlAuditStore(engine)),
                        source=ListLog(decisions, feedback), lookback=1e9)  # fmt: skip
    version = learning.train(TENANT, SURFACE, now=n * STEP + 100)  # every verdict arrived
    assert version.n_train == n - n // 4  # the holdout's 200 decisions were left out


def test_a_promotion_decided_on_the_runtime_gate_goes_live_too(tmp_path: Path) -> None:
    """Admins deciding through `copilot approvals` or `/v1/approvals` put the version live."""
    from copilot.runtime import Runtime
    from copilot.settings import Settings

    rt = Runtime(Settings(home=tmp_path))
    upgrade(rt.engine)
    learning = rt.learning
    sim = Simulator(6)
    n = 1200
    ctx = sim.contexts(n)
    chosen = sim.rng.choice(len(CANDIDATES), size=n)
    _, _, verdict = sim.outcomes(ctx, chosen)
    decisions = logged(ctx, chosen, np.full(n, 0.25), None, start=1000.0)
    decisions = [d.model_copy(update={"tenant": "default"}) for d in decisions]
    learning.store.log_decisions(decisions)
    learning.store.add_feedback("default", [
        Feedback(decision_id=d.decision_id, source="reviewer", event=str(verdict[i]),
                 at=d.decided_at + 60, edit_distance=0.3 if verdict[i] == "edit" else None,
                 reason="wrong account" if verdict[i] == "reject" else None)
        for i, d in enumerate(decisions)])  # fmt: skip
    now = 1000.0 + n * STEP + 3600
    version = learning.train("default", SURFACE, now=now, lookback=now)
    request = learning.request_promotion("default", SURFACE, version.version, requested_by="al",
                                         now=now, lookback=now)  # fmt: skip
    for admin in ("carol", "dave"):
        rt.gate.decide(request.id, reviewer=admin, roles={"admin"}, decision="approve",
                       payload_hash=request.payload_hash)  # fmt: skip
    assert learning.store.get("default", SURFACE, version.version).state == "live"
