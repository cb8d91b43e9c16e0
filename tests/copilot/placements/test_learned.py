"""Placements and learning wired, on SQLite and PostgreSQL: decide → events → train → promote → serve.

Decisions go through `Decider.decide()` (the placement declares `policy: learned`: the
rules serve, the floor exploring, until a version is live), the app's events feed the
rewards (complete positive, dismiss negative), `Learning.train` reads the placements
decision log, two admins promote on the runtime's gate, and the next decide is made by
the learned version: named in the answer, exploring with probability < 1, its top
feature contributions in the explanation, never an ineligible or dismissed candidate.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit import Actor, Query
from copilot.learn.service import in_holdout
from copilot.measure.outcomes import record_outcomes
from copilot.measure.rollout import RESUME_KIND
from copilot.placements.records import EventIn
from copilot.runtime import Runtime
from tests.support.learned_placements import GUARDED, MODULE, NAME
from tests.support.runtime import build_runtime

TENANT = "default"
APP = Actor.system("tests")
SHARE = 0.3  # the learn holdout: the rules serve it, training never reads it
LEARN = """
surfaces: {}
rewards: {window: 604800}
training: {floor: 0.3, min_samples: 12, gamma_scale: 1.0}
evidence: {estimator: dr, margin: 0.01}
guardrails: [{metric: t.complained, max_increase: 0.01}]
holdout_share: 0.3
lookback_days: 30
"""


def completes(candidate: str, stage: int, rng: random.Random) -> bool:
    """The hidden truth: alpha completes 20% of the time; beta 90% from stage 2, else 5%."""
    p = 0.2 if candidate == "alpha" else (0.9 if stage >= 2 else 0.05)
    return rng.random() < p


@pytest.fixture(scope="module")
def rt(shared_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    home = tmp_path_factory.mktemp("learned")
    (home / "learn.yaml").write_text(LEARN)
    runtime = build_runtime(shared_db, home, woken=[], with_flows=False,
                            placement_modules=MODULE, learn_path=home / "learn.yaml")  # fmt: skip
    runtime.placements  # noqa: B018 - start-up validation (registers `learned`)
    yield runtime
    runtime.close()


def _event(rt: Runtime, decision_id: str, kind: str) -> None:
    rt.placement_events.record(TENANT, decision_id, EventIn(event_id=uuid.uuid4().hex, kind=kind),
                               actor=APP)  # fmt: skip


def test_placement_decisions_train_a_policy_that_serves_once_promoted(
    rt: Runtime, tmp_path: Path
) -> None:
    rng = random.Random(5)
    run = "r1"  # fixed subjects: each run of the test sees the same assignments
    shown = 0
    for i in range(240):
        stage = i % 4
        d = rt.decider.decide(TENANT, NAME, f"s-{run}-{i}", {"t.stage": stage})
        if d.item is None:
            assert d.holdout  # the placement's holdout: control
            continue
        shown += 1
        assert d.policy == "rules" and d.item.id in ("alpha", "beta")
        assert d.probability == (1.0 if in_holdout(TENANT, NAME, d.subject_id, SHARE)
                                 else (0.7 if d.item.id == "alpha" else 0.3))  # fmt: skip
        _event(rt, d.decision_id, "complete" if completes(d.item.id, stage, rng) else "dismiss")

    learning = rt.learning
    version = learning.train(TENANT, NAME)
    assert 0 < version.n_train < shown  # the holdouts were left out
    assert version.state == "shadow"
    request = learning.request_promotion(TENANT, NAME, version.version, requested_by="al")
    for admin in ("carol", "dave"):
        rt.gate.decide(request.id, reviewer=admin, roles={"admin"}, decision="approve",
                       payload_hash=request.payload_hash)  # fmt: skip
    assert learning.store.get(TENANT, NAME, version.version).state == "live"

    served = []
    for i in range(90):
        subject = f"n-{run}-{i}"
        d = rt.decider.decide(TENANT, NAME, subject, {"t.stage": 3})
        if d.item is None or in_holdout(TENANT, NAME, subject, SHARE):
            continue
        assert d.item.id in ("alpha", "beta")  # never the ineligible one
        assert (d.policy, d.version) == ("learned", version.version)
        assert d.contributions and "What weighed most: " in d.explanation
        served.append(d)
    assert served and any(d.probability < 1.0 for d in served)
    assert sum(d.item.id == "beta" for d in served if d.item) > len(served) / 2  # it learned

    # A stop rule breach (the learn guardrail, live policy vs the learn holdout) pauses the
    # learned policy: the rules rank again until an admin resumes it.
    complaints = [{"subject_id": d.subject_id, "name": "t.complained"} for d in served]
    record_outcomes(rt.engine, rt.audit, rt.registry.outcomes, tenant=TENANT, events=complaints)
    paused = [p for p in rt.check_stop_rules() if p["target"] == NAME]
    assert [(p["kind"], p["target"]) for p in paused] == [("policy", NAME)]
    fresh, fresh2 = [s for s in (f"p-{run}-{i}" for i in range(100))
                     if not in_holdout(TENANT, NAME, s, SHARE)
                     and not rt.decider.held(rt.placements.get(NAME), s)][:2]  # fmt: skip
    ruled = rt.decider.decide(TENANT, NAME, fresh, {"t.stage": 3})
    assert ruled.policy == "rules" and not ruled.contributions
    [resume] = [r for r in rt.gate.queue(TENANT, kind=RESUME_KIND)[0]
                if r.payload["kind"] == "policy"]  # fmt: skip
    rt.gate.decide(resume.id, reviewer="root", roles={"admin"}, decision="approve",
                   payload_hash=resume.payload_hash, tenant=TENANT)  # fmt: skip
    again = rt.decider.decide(TENANT, NAME, fresh2, {"t.stage": 3})
    assert (again.policy, again.version) == ("learned", version.version)  # resumed

    # A dismissed candidate is not offered again to that subject, whatever the policy says.
    beta = next(d for d in served if d.item and d.item.id == "beta")
    _event(rt, beta.decision_id, "dismiss")
    for _ in range(5):
        again = rt.decider.decide(TENANT, NAME, beta.subject_id, {"t.stage": 3})
        assert again.item is None or again.item.id == "alpha"


def test_a_placement_stop_rule_breach_serves_control_until_an_admin_resumes(rt: Runtime) -> None:
    tenant = "g-" + uuid.uuid4().hex[:8]
    complained = []
    for i in range(80):
        d = rt.decider.decide(tenant, GUARDED, f"g{i}")
        if d.item is not None:  # the treated complain; the holdout (control) does not
            complained.append({"subject_id": d.subject_id, "name": "t.complained"})
    record_outcomes(rt.engine, rt.audit, rt.registry.outcomes, tenant=tenant, events=complained)
    treated = next(f"g{i}" for i in range(80) if not rt.decider.held(rt.placements.get(GUARDED),
                                                                       f"g{i}"))  # fmt: skip
    assert rt.decider.decide(tenant, GUARDED, treated).item is not None

    paused = [p for p in rt.check_stop_rules() if p["target"] == GUARDED]
    assert [(p["kind"], p["target"]) for p in paused] == [("placement", GUARDED)]
    assert paused[0]["low"] > 0.01
    assert not [p for p in rt.check_stop_rules() if p["target"] == GUARDED]  # one breach, one pause
    rt.audit.settle(tenant)
    [audited] = [e.data for e in rt.audit.query(tenant, Query(event_type="rollout.paused"))]
    assert (audited["kind"], audited["target"]) == ("placement", GUARDED)

    # Paused: the placement serves control (its holdout's experience), and says why.
    d = rt.decider.decide(tenant, GUARDED, treated)
    assert d.item is None and d.why == "rollout_paused" and not d.holdout
    assert (
        "rollout_paused" in rt.decider.explain(tenant, GUARDED, treated).candidates[0].excluded_by
    )

    [resume] = rt.gate.queue(tenant, kind=RESUME_KIND)[0]
    assert resume.role == "admin"
    rt.gate.decide(resume.id, reviewer="root", roles={"admin"}, decision="approve",
                   payload_hash=resume.payload_hash, tenant=tenant)  # fmt: skip
    fresh = next(s for s in (f"fresh{i}" for i in range(100))
                 if not rt.decider.held(rt.placements.get(GUARDED), s))  # fmt: skip
    assert rt.decider.decide(tenant, GUARDED, fresh).item is not None  # resumed: treated again
