"""Separation of duties by principal, and actions bound to their run's subject, through the API.

The holes a hostile review found (issue 16): a key that ingests the signals firing an event
trigger approved that run's action; two keys shared a name; a reviewer's edit retargeted an
action to another (opted-out, or another tenant's) subject.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import Actor
from copilot.engine.runs import Run, RunState
from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.guarded import GUARD_WEEKLY
from tests.support.runtime import build_runtime

MODULES = "tests.support.flows,tests.support.guarded"


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API on each dialect, with the guarded workflow, its trigger and its schedule."""
    rt = build_runtime(db_url, tmp_path, woken=[], workflow_modules=MODULES)
    with TestClient(create_app(rt.settings, runtime=rt)) as client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _fire(api: Api, headers: dict[str, str], subject: str = "acct-1") -> Run:
    """Ingest a usage drop as `headers`' key; the run it fired, advanced to waiting."""
    r = api.client.post(
        "/v1/signals", json={"subject_id": subject, "values": {"guard_usage": -45}}, headers=headers
    )
    assert r.status_code == 201, r.text
    (fired,) = r.json()["fired"]
    return api.rt.runner.run_inline(fired["run_id"])


def _decide(api: Api, headers: dict[str, str], approval: Any, **body: Any) -> Any:
    return api.client.post(
        f"/v1/approvals/{approval.id}/decision",
        json={"decision": "approve", "payload_hash": approval.payload_hash, **body},
        headers=headers,
    )


def test_the_key_whose_signals_fired_a_run_cannot_approve_its_actions(api: Api) -> None:
    key, token = api.rt.keys.create(
        tenant="acme", roles=["app", "reviewer"], name="insider", actor=Actor.system("t")
    )
    run = _fire(api, _bearer(token))
    assert run.state == RunState.WAITING and run.principal == f"key:{key.id}"
    shown = api.client.get(f"/v1/runs/{run.id}", headers=_bearer(token)).json()
    assert shown["principal"] == f"key:{key.id}" and shown["triggered_by"] == "trigger:guard_drop"
    req = api.pending(run)
    assert req.principal == f"key:{key.id}" and req.risk.value == "high"

    refused = _decide(api, _bearer(token), req)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "approval.separation_of_duties"
    edited = _decide(api, _bearer(token), req, edits={"text": "Please pay."})
    assert edited.json()["error"]["code"] == "approval.separation_of_duties"
    assert api.rt.gate.get(req.id).status == "pending"

    ok = _decide(api, api.auth("acme", "reviewer"), req)  # another key may
    assert ok.status_code == 200 and ok.json()["status"] == "approved"


def test_the_key_that_triggered_a_run_cannot_approve_it_whatever_its_name(api: Api) -> None:
    key, token = api.rt.keys.create(
        tenant="acme", roles=["app", "reviewer"], name="both", actor=Actor.system("t")
    )
    r = api.client.post(
        "/v1/runs", json={"workflow": "guarded", "subject_id": "acct-2"}, headers=_bearer(token)
    )
    assert r.status_code == 202 and r.json()["principal"] == f"key:{key.id}"
    req = api.pending(api.rt.runner.run_inline(r.json()["id"]))
    refused = _decide(api, _bearer(token), req)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "approval.separation_of_duties"


def test_key_names_are_unique_per_tenant_revoked_keys_included(api: Api) -> None:
    admin = api.auth("acme", "admin")
    taken = api.client.post("/v1/keys", json={"roles": ["reviewer"], "name": "acme-app"},
                            headers=admin)  # fmt: skip
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "key.name_taken"
    made = api.client.post("/v1/keys", json={"roles": ["app"], "name": "temp"}, headers=admin)
    assert made.status_code == 201
    api.client.delete(f"/v1/keys/{made.json()['key']['id']}", headers=admin)
    again = api.client.post("/v1/keys", json={"roles": ["reviewer"], "name": "temp"}, headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "key.name_taken"
    other = api.client.post("/v1/keys", json={"roles": ["reviewer"], "name": "acme-app"},
                            headers=api.auth("globex", "admin"))  # fmt: skip
    assert other.status_code == 201  # names are per tenant


def test_a_revoked_and_recreated_key_is_a_new_principal_of_a_new_name(api: Api) -> None:
    """The separation binds keys: the one that fired the run is refused while it lives; once
    revoked it cannot decide at all, and its successor has another id and another name."""
    key, token = api.rt.keys.create(
        tenant="acme", roles=["app", "reviewer"], name="rotating", actor=Actor.system("t")
    )
    req = api.pending(_fire(api, _bearer(token)))
    api.rt.keys.revoke(key.id, tenant="acme", actor=Actor.system("t"))
    # Within the key cache's seconds the revoked key still authenticates (then it is refused
    # as the run's principal); after them it is unknown (401). Either way nothing is decided.
    assert _decide(api, _bearer(token), req).status_code in (401, 403)
    assert api.rt.gate.get(req.id).status == "pending"
    successor = api.client.post("/v1/keys", json={"roles": ["reviewer"], "name": "rotating"},
                                headers=api.auth("acme", "admin"))  # fmt: skip
    assert successor.json()["error"]["code"] == "key.name_taken"


def test_a_schedules_run_has_the_schedule_as_principal(api: Api) -> None:
    proactive = api.rt.proactive()
    now = api.rt.runs.clock()
    start = GUARD_WEEKLY.period_start(now)
    (fired,) = proactive.run_batch(GUARD_WEEKLY.name, "acme", start, ["acct-9"])
    run = api.rt.runner.run_inline(fired.run_id)
    assert run.principal == "schedule:guard_weekly"
    req = api.pending(run)
    assert req.principal == "schedule:guard_weekly"
    assert _decide(api, api.auth("acme", "reviewer"), req).status_code == 200


# -- edits cannot retarget ------------------------------------------------------------------


@pytest.mark.parametrize(
    "edits",
    [
        {"account_id": "acct-opted-out"},
        {"billing": {"account_id": "acct-opted-out", "amount": 120}},
        {"account_id": "globex-acct", "billing": {"account_id": "globex-acct", "amount": 120}},
        {"to": "attacker@example.org"},
    ],
    ids=["top", "nested", "other-tenant-both", "recipient"],
)
def test_an_edit_cannot_retarget_an_action_to_another_subject(
    api: Api, edits: dict[str, Any]
) -> None:
    prefs = api.rt.consent.get("acme", "acct-opted-out").model_copy(update={"opt_out_all": True})
    api.rt.consent.set(prefs, actor=Actor.system("t"))
    run = _fire(api, api.auth("acme", "app"))
    req = api.pending(run)
    r = _decide(api, api.auth("acme", "reviewer"), req, edits=edits)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "approval.subject_locked"
    assert api.rt.gate.get(req.id).status == "pending"
    assert [x.version for x in api.rt.gate.of_run(run.id)] == [1]  # no new version written
    fine = _decide(api, api.auth("acme", "reviewer"), req, edits={"text": "A gentle reminder."})
    assert fine.status_code == 200 and fine.json()["payload"]["account_id"] == "acct-1"


def test_a_proposal_naming_another_subject_is_refused(api: Api) -> None:
    run, _ = api.rt.runner.trigger(
        "guarded", "acct-1", tenant="acme", inputs={"target": "globex-acct"}, triggered_by="t"
    )
    done = api.rt.runner.run_inline(run.id)
    assert done.state == RunState.FAILED
    assert done.error is not None and "approval.subject_mismatch" in str(done.error)
    assert api.rt.gate.of_run(run.id) == []


def test_an_approved_action_whose_payload_names_another_subject_never_executes(api: Api) -> None:
    """Defence in depth for requests stored before subjects were bound: consent and the
    subject are checked for whom the payload names, not only for the request's subject."""
    import json

    from sqlalchemy import update

    from approvals.tables import requests

    prefs = api.rt.consent.get("acme", "acct-gone").model_copy(update={"opt_out_all": True})
    api.rt.consent.set(prefs, actor=Actor.system("t"))
    run = _fire(api, api.auth("acme", "app"))
    req = api.pending(run)
    assert _decide(api, api.auth("acme", "reviewer"), req).status_code == 200
    legacy = {**req.payload, "account_id": "acct-gone"}
    with api.rt.engine.begin() as conn:  # as an edit before this fix could leave it
        conn.execute(
            update(requests).where(requests.c.id == req.id).values(payload=json.dumps(legacy))
        )
    done = api.rt.runner.run_inline(run.id)
    after = api.rt.gate.get(req.id)
    assert after.status == "cancelled" and after.execution_status is None
    assert after.reason == "the payload names another subject than the request's"
    assert done.state == RunState.COMPLETED


def test_of_concurrent_creates_of_one_name_exactly_one_wins(api: Api) -> None:
    import threading

    from copilot.errors import KeyNameTakenError

    outcomes: list[str] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        try:
            api.rt.keys.create(tenant="acme", roles=["reviewer"], name="racer",
                               actor=Actor.system("t"))  # fmt: skip
            outcomes.append("created")
        except KeyNameTakenError:
            outcomes.append("key.name_taken")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["created"] + ["key.name_taken"] * 7
    keys, _ = api.rt.keys.list("acme", limit=500)
    assert [k.name for k in keys].count("racer") == 1
    created = [e for e in api.rt.audit.query("acme", _created()) if e.data["name"] == "racer"]
    assert len(created) == 1  # the losers wrote no audit event either


def _created() -> Any:
    from audit import Query

    return Query(event_type="key.created", limit=1000)


def test_upgrading_renames_keys_that_share_a_name_and_keeps_the_oldest(db_url: str) -> None:
    from sqlalchemy import create_engine, insert, select

    from copilot.db.engines import upgrade
    from copilot.db.tables import api_keys

    engine = create_engine(db_url)
    try:
        upgrade(engine, "0011_approval_docs")
        rows = [("a" * 16, "maya", 1.0), ("b" * 16, "maya", 2.0), ("c" * 16, "li", 3.0)]
        with engine.begin() as conn:
            for kid, name, at in rows:
                conn.execute(insert(api_keys).values(id=kid, tenant="acme", name=name,
                             roles="reviewer", secret_sha256="0" * 64, created_at=at))  # fmt: skip
            conn.execute(insert(api_keys).values(id="d" * 16, tenant="globex", name="maya",
                         roles="reviewer", secret_sha256="0" * 64, created_at=4.0))  # fmt: skip
        upgrade(engine)
        with engine.connect() as conn:
            names = dict(conn.execute(select(api_keys.c.id, api_keys.c.name)).all())
        assert names == {"a" * 16: "maya", "b" * 16: f"maya~{'b' * 16}", "c" * 16: "li",
                         "d" * 16: "maya"}  # fmt: skip
    finally:
        engine.dispose()
