"""The promotion gate's separation of duties and its payload lock, on SQLite and PostgreSQL.

The hostile review's F3 (the requester approved their own promotion: the request said
`learn:alice`, the reviewer `alice`) and F4 (an edit swapped the promoted version for one
the evidence refused, then another admin's approval put it live under the good one's
evidence hash).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from approvals import Gate, SeparationOfDutiesError
from audit import Actor
from copilot.governance.keys import principal_of
from copilot.learn.errors import EvidenceMismatchError, PromotionLockedError, SegmentHarmedError
from copilot.learn.gate import PromotePolicy, check_cleared, promotion_catalog, promotion_policy
from copilot.learn.rewards import Feedback
from copilot.learn.service import Learning
from tests.copilot.api.conftest import api  # noqa: F401
from tests.copilot.learn.test_gate import SURFACE, TENANT, _harming, world  # noqa: F401
from tests.support.api import Api
from tests.support.simulator import CANDIDATES, STEP, Simulator, logged


def test_the_requester_is_no_approver_and_two_others_are_the_quorum(world: Any) -> None:  # noqa: F811
    learning, _, _ = world
    good = learning.train(TENANT, SURFACE)
    req = learning.request_promotion(TENANT, SURFACE, good.version, requested_by="alice",
                                     principal="key:alices-key")  # fmt: skip
    assert (req.triggered_by, req.principal) == ("alice", "key:alices-key")
    gate = learning.promotions
    with pytest.raises(SeparationOfDutiesError) as own:
        gate.decide(req.id, admin="alice", roles={"admin"}, approve=True)
    assert own.value.code == "approval.separation_of_duties"
    with pytest.raises(SeparationOfDutiesError):  # the same key under another name
        gate.decide(
            req.id, admin="alias", roles={"admin"}, approve=True, principal="key:alices-key"
        )
    assert gate.decide(req.id, admin="bob", roles={"admin"}, approve=True).status == "pending"
    with pytest.raises(SeparationOfDutiesError):  # requester + one other is not two admins
        gate.decide(req.id, admin="alice", roles={"admin"}, approve=True)
    assert learning.store.get(TENANT, SURFACE, good.version).state == "shadow"
    assert gate.decide(req.id, admin="carol", roles={"admin"}, approve=True).status == "approved"
    assert learning.store.get(TENANT, SURFACE, good.version).state == "live"


def test_a_promotion_is_never_edited_and_a_swapped_payload_never_goes_live(world: Any) -> None:  # noqa: F811
    learning, clock, _ = world
    store = learning.store
    good = learning.train(TENANT, SURFACE)
    clock.now += 1
    harmful = _harming(learning, good.version)
    with pytest.raises(SegmentHarmedError) as refused:
        learning.request_promotion(TENANT, SURFACE, harmful, requested_by="mallory")
    bad = store.get(TENANT, SURFACE, harmful)
    req = learning.request_promotion(TENANT, SURFACE, good.version, requested_by="mallory")
    swap = {"version": harmful, "artifact_hash": bad.hash}
    with pytest.raises(PromotionLockedError) as locked:
        learning.promotions.gate.edit(req.id, reviewer="alice", roles={"admin"}, edits=swap,
                                      payload_hash=req.payload_hash)  # fmt: skip
    assert locked.value.code == "learn.promotion_locked"
    assert learning.promotions.gate.get(req.id).status == "pending"  # nothing superseded it

    # Defence in depth: a gate without the lock (an older build, any other gate holding the
    # kind) lets the edit through; the approval that reaches the quorum is still refused.
    plain = Gate(store.engine, store.audit, promotion_catalog(), promotion_policy(),
                 clock=clock, on_settled=learning.promotions.on_settled)  # fmt: skip
    new = plain.edit(req.id, reviewer="alice", roles={"admin"}, edits=swap,
                     payload_hash=req.payload_hash)  # fmt: skip
    assert new.status == "pending" and new.payload["version"] == harmful
    with pytest.raises(EvidenceMismatchError) as mismatch:
        learning.promotions.decide(new.id, admin="bob", roles={"admin"}, approve=True)
    assert mismatch.value.code == "learn.evidence_mismatch"
    assert mismatch.value.details["fields"] == ["evidence_hash"]  # the good version's evidence
    assert plain.get(new.id).status == "pending" and plain.get(new.id).approvals == ["alice"]
    assert store.get(TENANT, SURFACE, harmful).state == "shadow"
    assert store.serving(TENANT, SURFACE).name == "rules"

    # Each field on its own: the artifact of another version; evidence that did not clear.
    bad_evidence = refused.value.details["evidence_hash"]
    cases = {
        ("artifact_hash",): dict(req.payload, artifact_hash=bad.hash),
        ("verdict",): dict(req.payload, version=harmful, artifact_hash=bad.hash,
                           evidence_hash=bad_evidence),
    }  # fmt: skip
    with store.engine.connect() as conn:
        check_cleared(conn, TENANT, PromotePolicy.model_validate(req.payload))  # the real one
        for fields, payload in cases.items():
            with pytest.raises(EvidenceMismatchError) as err:
                check_cleared(conn, TENANT, PromotePolicy.model_validate(payload))
            assert tuple(err.value.details["fields"]) == fields


def _seeded_promotion(learning: Learning, tenant: str, *, requested_by: str,
                      principal: str) -> tuple[str, Any]:  # fmt: skip
    """A trained version in `tenant` and its pending promotion, filed by that admin's key."""
    sim = Simulator(6)
    n = 1200
    ctx = sim.contexts(n)
    chosen = sim.rng.choice(len(CANDIDATES), size=n)
    _, _, verdict = sim.outcomes(ctx, chosen)
    decisions = [d.model_copy(update={"tenant": tenant, "decision_id": f"{tenant}-{d.decision_id}"})
                 for d in logged(ctx, chosen, np.full(n, 0.25), None, start=1000.0)]  # fmt: skip
    learning.store.log_decisions(decisions)
    learning.store.add_feedback(tenant, [
        Feedback(decision_id=d.decision_id, source="reviewer", event=str(verdict[i]),
                 at=d.decided_at + 60, edit_distance=0.3 if verdict[i] == "edit" else None,
                 reason="wrong account" if verdict[i] == "reject" else None)
        for i, d in enumerate(decisions)])  # fmt: skip
    now = 1000.0 + n * STEP + 3600
    version = learning.train(tenant, SURFACE, now=now, lookback=now).version
    req = learning.request_promotion(tenant, SURFACE, version, requested_by=requested_by,
                                     principal=principal, now=now, lookback=now)  # fmt: skip
    return version, req


def test_over_http_the_requester_cannot_approve_and_an_edit_is_refused(api: Api) -> None:  # noqa: F811
    """`/v1/approvals/{id}/decision`, with edits or without, by the requester's key or another."""
    learning = api.rt.learning
    keys = [api.rt.keys.create(tenant="acme", roles=["reviewer", "admin"], name=f"acme-lead-{i}",
                               actor=Actor.system("test")) for i in range(2)]  # fmt: skip
    (lead, own_secret), (_, other) = keys
    version, req = _seeded_promotion(learning, "acme", requested_by="someone-else",
                                     principal=principal_of(lead.id))  # fmt: skip
    own = {"Authorization": f"Bearer {own_secret}"}
    url = f"/v1/approvals/{req.id}/decision"
    vote = {"decision": "approve", "payload_hash": req.payload_hash}
    edit = {**vote, "edits": {"version": "0" * 16}}
    for body in (vote, edit):
        r = api.client.post(url, headers=own, json=body)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "approval.separation_of_duties"
    r = api.client.post(url, headers={"Authorization": f"Bearer {other}"}, json=edit)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "learn.promotion_locked"
    assert api.rt.gate.get(req.id, tenant="acme").status == "pending"
    assert learning.store.get("acme", SURFACE, version).state == "shadow"
    for who in ("carol", "dave"):  # two admins besides the requester put it live
        api.rt.gate.decide(req.id, reviewer=who, roles={"admin"}, decision="approve",
                           payload_hash=req.payload_hash, tenant="acme")  # fmt: skip
    assert learning.store.get("acme", SURFACE, version).state == "live"
