"""`/v1/learn/...` on SQLite and PostgreSQL: train, evidence, promotion by two distinct
admins through the API, bad input, and another tenant that sees and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audit import Actor, Query
from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.learn_world import SURFACE, learn_file, seed
from tests.support.runtime import build_runtime


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    rt = build_runtime(db_url, tmp_path, woken=[], learn_path=learn_file(tmp_path))
    with TestClient(create_app(rt.settings, runtime=rt)) as client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt))


def _second_admin(api: Api, n: int = 2) -> dict[str, str]:
    _, token = api.rt.keys.create(tenant="acme", roles=["admin"], name=f"acme-admin-{n}",
                                  actor=Actor.system("test"))  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def test_an_admin_trains_evaluates_and_two_admins_promote_over_http(api: Api) -> None:
    seed(api.rt.learning.store, "acme", 1000)  # enough for evidence that clears the margin
    c, admin = api.client, api.auth("acme", "admin")
    status = c.get(f"/v1/learn/{SURFACE}", headers=admin).json()
    assert status["serving"] == "rules" and status["versions"] == []
    r = c.post(f"/v1/learn/{SURFACE}/train", headers=admin)
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert r.json()["state"] == "shadow" and r.json()["n_train"] == 1000

    r = c.get(f"/v1/learn/{SURFACE}/versions/{version}/evidence", headers=admin)
    assert r.status_code == 200, r.text
    evidence = r.json()
    assert evidence["verdict"] == "ok" and set(evidence["candidate"]["estimates"]) == {
        "ips", "snips", "dr"}  # fmt: skip
    low, high = evidence["difference"]["low"], evidence["difference"]["high"]
    assert 0.01 < low <= evidence["difference"]["difference"] <= high

    r = c.post(f"/v1/learn/{SURFACE}/versions/{version}/promotion", headers=admin)
    assert r.status_code == 202, r.text
    req = r.json()
    assert (req["kind"], req["required_n"], req["status"]) == ("promote_policy", 2, "pending")
    decision = f"/v1/learn/promotions/{req['id']}/decision"
    # The requester is no approver of its own promotion (separation of duties).
    own = c.post(decision, headers=admin, json={"decision": "approve"})
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "approval.separation_of_duties"
    second, third = _second_admin(api), _second_admin(api, 3)
    assert c.post(decision, headers=second, json={"decision": "approve"}).status_code == 200
    # The same admin's second vote counts once: refused, and nothing goes live.
    twice = c.post(decision, headers=second, json={"decision": "approve"})
    assert twice.status_code == 403 and twice.json()["error"]["code"] == "approval.forbidden"
    assert c.get(f"/v1/learn/{SURFACE}", headers=admin).json()["serving"] == "rules"
    # Another tenant's admin cannot see or decide it.
    other = c.post(decision, headers=api.auth("globex", "admin"), json={"decision": "approve"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "approval.not_found"
    r = c.post(decision, headers=third, json={"decision": "approve"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    status = c.get(f"/v1/learn/{SURFACE}", headers=admin).json()
    assert status["serving"] == f"learned@{version}"
    assert [v["state"] for v in status["versions"]] == ["live"]
    # Promoting it again: it is no longer in shadow.
    again = c.post(f"/v1/learn/{SURFACE}/versions/{version}/promotion", headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "learn.conflict"
    events = [e.event_type for e in api.rt.audit.query("acme", Query(limit=1000))]
    assert {"learn.trained", "learn.promotion_requested", "learn.promoted"} <= set(events)
    assert api.rt.trail.verify("acme").ok


def test_bad_input_and_another_tenant_get_stable_codes_and_change_nothing(api: Api) -> None:
    seed(api.rt.learning.store, "acme", 150)  # enough to train on
    c, admin, globex = api.client, api.auth("acme", "admin"), api.auth("globex", "admin")
    version = c.post(f"/v1/learn/{SURFACE}/train", headers=admin).json()["version"]
    cases = [
        ("GET", f"/v1/learn/{SURFACE}/versions/{version}/evidence", globex, None, 404,
         "learn.not_found"),  # acme's version does not exist for globex
        ("POST", f"/v1/learn/{SURFACE}/train", globex, None, 409, "learn.not_enough_data"),
        ("GET", f"/v1/learn/{SURFACE}/versions/not-a-version/evidence", admin, None, 422,
         "request.invalid"),
        ("GET", f"/v1/learn/{SURFACE}/versions/{'0' * 16}/evidence", admin, None, 404,
         "learn.not_found"),
        ("GET", "/v1/learn/bad%20surface", admin, None, 422, "request.invalid"),
        ("POST", f"/v1/learn/promotions/{'a' * 32}/decision", admin, {"decision": "approve"},
         404, "approval.not_found"),
        ("POST", f"/v1/learn/promotions/{'a' * 32}/decision", admin, {"decision": "maybe"},
         422, "request.invalid"),
        ("POST", f"/v1/learn/promotions/{'a' * 32}/decision", admin,
         {"decision": "approve", "admin": "someone-else"}, 422, "request.invalid"),
        ("POST", f"/v1/learn/{SURFACE}/train", api.auth("acme", "reviewer"), None, 403,
         "auth.forbidden"),
    ]  # fmt: skip
    for method, path, headers, body, want, code in cases:
        r = c.request(method, path, headers=headers, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (want, code), (path, r.text)
    assert c.get(f"/v1/learn/{SURFACE}", headers=globex).json()["versions"] == []
    assert [v.version for v in api.rt.learning.store.versions("acme", SURFACE)] == [version]
    assert c.post(f"/v1/learn/{SURFACE}/guardrails", headers=admin).json() == []  # no live one
