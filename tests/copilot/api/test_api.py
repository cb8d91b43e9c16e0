"""The HTTP API's behaviour on SQLite and PostgreSQL: idempotency, decisions, pages, limits, errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from audit import Actor, verify_bundle
from audit import Query as AuditQuery
from copilot.db.tables import runs, signals
from copilot.errors import KeyNameTakenError
from copilot.server import create_app
from copilot.settings import Settings
from tests.support.api import Api


def counts(api: Api) -> tuple[int, int, int]:
    """(runs, signal rows, audit entries of acme): what a refused request must not change."""
    with api.rt.engine.connect() as conn:
        n_runs = conn.execute(select(func.count()).select_from(runs)).scalar_one()
        n_signals = conn.execute(select(func.count()).select_from(signals)).scalar_one()
    api.rt.audit.settle("acme")
    return n_runs, n_signals, api.rt.audit.head("acme")[0]


def test_the_same_idempotency_key_returns_the_same_run_and_reuse_for_another_request_is_409(
    api: Api,
) -> None:
    body = {"workflow": "five_steps", "subject_id": "acct-1", "idempotency_key": "order-17"}
    first = api.client.post("/v1/runs", json=body, headers=api.auth("acme", "app"))
    again = api.client.post("/v1/runs", json=body, headers=api.auth("acme", "app"))
    assert first.status_code == again.status_code == 202
    assert first.json()["created"] is True and again.json()["created"] is False
    assert again.json()["id"] == first.json()["id"]
    assert api.woken == [first.json()["id"]]  # one wake-up: the replay enqueues nothing
    other = api.client.post(
        "/v1/runs", json={**body, "subject_id": "acct-2"}, headers=api.auth("acme", "app")
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "run.idempotency_mismatch"
    # Keys are per tenant: globex's "order-17" is a run of its own.
    theirs = api.client.post("/v1/runs", json=body, headers=api.auth("globex", "app"))
    assert theirs.json()["created"] is True and theirs.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject_id": "acct-1"}, "body.workflow"),
        ({"workflow": "five_steps", "subject_id": "a\tb"}, "body.subject_id"),
        ({"workflow": "five_steps", "subject_id": "acct-1", "extra": 1}, "body.extra"),
        ({"workflow": "five_steps", "subject_id": "acct-1", "inputs": {"n": 2**60}}, "body.inputs"),
        ({"workflow": "five_steps", "subject_id": "x", "inputs": {"subject_id": "y"}}, "body.inputs"),
        ({"workflow": "five_steps", "subject_id": "acct-1", "idempotency_key": ""}, "body.idempotency_key"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field_and_write_nothing(
    api: Api, body: dict[str, object], field: str
) -> None:
    before = counts(api)
    r = api.client.post("/v1/runs", json=body, headers=api.auth("acme", "app"))
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "request.invalid"
    assert field in [f["field"] for f in error["details"]["fields"]]
    assert field in error["message"]
    assert counts(api) == before


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"workflow": "five_steps", "subject_id": "a", "inputs": {"x": NaN}}', "request.invalid"),
        (b'{"workflow": "five_steps", "subject_id": "a", "inputs": {"x": "\\ud800"}}', "request.invalid"),
        (b'{"workflow": "five_steps", "subject_id": "a", "inputs": {"x": "\\u0000"}}', "request.invalid"),
        (b'{"workflow": "five_steps", "subject_id": "a\\u0000"}', "request.invalid"),
        (b'{"workflow": "five_steps", "subject_id": "a", "inputs": ' + b'{"a": ' * 40 + b"1" + b"}" * 41, "request.too_deep"),
        (b"not json", "request.invalid"),
        (b"[]", "request.invalid"),
        (b'{"workflow": "no_such_flow", "subject_id": "a"}', "workflow.unknown"),
        (b'{"workflow": "five_steps", "subject_id": "a", "inputs": {"delay_ms": "slow"}}', "run.invalid_inputs"),
    ],
)  # fmt: skip
def test_hostile_bodies_get_a_4xx_with_a_stable_code_and_write_nothing(
    api: Api, raw: bytes, code: str
) -> None:
    before = counts(api)
    headers = {**api.auth("acme", "app"), "Content-Type": "application/json"}
    r = api.client.post("/v1/runs", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert counts(api) == before


def test_a_body_over_the_limit_is_413_by_length_or_while_streaming(api: Api) -> None:
    before = counts(api)
    big = b'{"workflow": "five_steps", "subject_id": "' + b"a" * 300_000 + b'"}'
    headers = {**api.auth("acme", "app"), "Content-Type": "application/json"}
    r = api.client.post("/v1/runs", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"

    def chunks():  # no Content-Length: the limit counts what it reads
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]

    r = api.client.post("/v1/runs", content=chunks(), headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"
    assert counts(api) == before


def test_the_reviewer_is_the_keys_principal_and_a_body_cannot_name_another(api: Api) -> None:
    run = api.waiting_run()
    req = api.pending(run)
    h = api.auth("acme", "reviewer")
    forged = {"decision": "approve", "payload_hash": req.payload_hash, "reviewer": "ceo"}
    r = api.client.post(f"/v1/approvals/{req.id}/decision", json=forged, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "body.reviewer"
    forged.pop("reviewer")
    r = api.client.post(f"/v1/approvals/{req.id}/decision", json=forged, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["approvals"] == ["acme-reviewer"]
    from audit import Query

    votes = api.rt.audit.query("acme", Query(run_id=run.id, event_type="approval.vote"))
    assert [(v.actor.kind.value, v.actor.id) for v in votes] == [("human", "acme-reviewer")]


def test_whoever_triggered_the_run_cannot_approve_it_with_a_reviewer_key(api: Api) -> None:
    """The run records its principal (the triggering key); a reviewer key cannot borrow the
    triggering key's name (names are unique per tenant), and the principal is refused."""
    key, token = api.rt.keys.create(
        tenant="acme", roles=["app", "reviewer"], name="acme-ops", actor=Actor.system("t")
    )
    run, _ = api.rt.runner.trigger(
        "proposing", "acct-1", tenant="acme", triggered_by=key.name, principal=f"key:{key.id}"
    )
    req = api.pending(api.rt.runner.run_inline(run.id))
    r = api.client.post(
        f"/v1/approvals/{req.id}/decision",
        json={"decision": "approve", "payload_hash": req.payload_hash},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "approval.separation_of_duties"
    assert api.rt.gate.get(req.id).status == "pending"
    with pytest.raises(KeyNameTakenError):
        api.rt.keys.create(tenant="acme", roles=["reviewer"], name="acme-app",
                           actor=Actor.system("t"))  # fmt: skip


def test_decisions_conflict_on_a_stale_hash_or_a_second_decision_and_wake_the_run(
    api: Api,
) -> None:
    run = api.waiting_run()
    api.woken.clear()  # the trigger's wake-up
    req = api.pending(run)
    h = api.auth("acme", "reviewer")
    url = f"/v1/approvals/{req.id}/decision"
    stale = api.client.post(url, json={"decision": "approve", "payload_hash": "0" * 64}, headers=h)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "approval.conflict"
    no_reason = api.client.post(
        url, json={"decision": "reject", "payload_hash": req.payload_hash}, headers=h
    )
    assert no_reason.status_code == 403
    assert api.woken == []  # nothing settled: no wake-up
    ok = api.client.post(
        url,
        json={"decision": "reject", "payload_hash": req.payload_hash, "reason": "not now"},
        headers=h,
    )
    assert ok.status_code == 200 and ok.json()["status"] == "rejected"
    assert api.woken == [run.id]  # the last open request settled: the run is queued and woken
    assert api.rt.runs.get(run.id).state.value == "queued"
    again = api.client.post(
        url, json={"decision": "approve", "payload_hash": req.payload_hash}, headers=h
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "approval.conflict"


def test_edit_then_approve_returns_the_new_version(api: Api) -> None:
    run = api.waiting_run()
    email = next(r for r in api.rt.gate.of_run(run.id) if r.kind == "email_customer")
    h = api.auth("acme", "reviewer")
    url = f"/v1/approvals/{email.id}/decision"
    edits = {"body": "Hi Ana, shall we talk on Tuesday?"}
    refused = api.client.post(
        url,
        json={"decision": "reject", "payload_hash": email.payload_hash, "edits": edits, "reason": "x"},
        headers=h,
    )  # fmt: skip
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "request.invalid"
    bad = api.client.post(
        url,
        json={"decision": "approve", "payload_hash": email.payload_hash, "edits": {"attachments": -1}},
        headers=h,
    )  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "approval.invalid_payload"
    r = api.client.post(
        url, json={"decision": "approve", "payload_hash": email.payload_hash, "edits": edits}, headers=h
    )  # fmt: skip
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["version"] == 2 and new["supersedes"] == email.id and new["status"] == "approved"
    assert new["payload"]["body"] == edits["body"]
    assert api.rt.gate.get(email.id).status == "superseded"


def test_the_queue_pages_with_a_cursor_and_sees_each_request_once(api: Api) -> None:
    for i in range(7):
        api.waiting_run(subject=f"acct-{i}")
    api.waiting_run("globex")
    h = api.auth("acme", "reviewer")
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/approvals", params=params, headers=h).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7  # one send_email per run waits for a person
    done = api.client.get("/v1/approvals", params={"status": "approved"}, headers=h).json()
    assert {i["kind"] for i in done["items"]} == {"post_note"} and len(done["items"]) == 7
    bad = api.client.get("/v1/approvals", params={"cursor": "Zm9v"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "approval.bad_cursor"


def test_audit_events_page_forward_and_filter_by_run(api: Api) -> None:
    run = api.waiting_run()
    api.waiting_run(subject="acct-2")
    h = api.auth("acme", "auditor")
    seqs, after = [], 0
    while True:
        page = api.client.get(
            "/v1/audit/events", params={"after_seq": after, "limit": 4}, headers=h
        ).json()
        seqs += [e["seq"] for e in page["items"]]
        if page["next_after_seq"] is None:
            break
        after = page["next_after_seq"]
    assert seqs == list(range(1, api.rt.audit.head("acme")[0] + 1))
    mine = api.client.get("/v1/audit/events", params={"run_id": run.id}, headers=h).json()
    assert mine["items"] and {e["run_id"] for e in mine["items"]} == {run.id}
    assert all(e["personal"] is None for e in mine["items"])  # erasable payloads stay out


def test_the_exported_bundle_verifies_offline(api: Api, tmp_path: Path) -> None:
    api.waiting_run()
    api.rt.signing_trail.checkpoint("acme")  # this host holds the key, as a beat host does
    api.waiting_run(subject="acct-2")  # entries past the last checkpoint: export signs them
    r = api.client.get("/v1/audit/export", headers=api.auth("acme", "auditor"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    verdicts = verify_bundle(tmp_path / "bundle")
    assert [(v.stream, v.ok, v.unsigned) for v in verdicts] == [("acme", True, 0)]
    assert verdicts[0].entries == api.rt.audit.head("acme")[0]
    verified = api.client.get("/v1/audit/verify", headers=api.auth("acme", "auditor")).json()
    assert verified["ok"] and verified["line"].startswith("OK ")


def test_signals_are_all_or_nothing(api: Api) -> None:
    before = counts(api)
    h = api.auth("acme", "app")
    r = api.client.post(
        "/v1/signals",
        json={"subject_id": "acct-1", "values": {"usage_trend": 4.0, "shoe_size": 44}},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "signal.undeclared"
    assert r.json()["error"]["details"]["problems"] == [
        {"signal": "shoe_size", "problem": "undeclared"}
    ]
    r = api.client.post(
        "/v1/signals", json={"subject_id": "acct-1", "values": {"nps": "high"}}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "signal.invalid"
    assert counts(api) == before
    r = api.client.post(
        "/v1/signals",
        json={"subject_id": "acct-1", "values": {"usage_trend": 4.0, "nps": 9}},
        headers=h,
    )
    assert r.status_code == 201 and r.json() == {"accepted": 2, "fired": [], "failed": []}


def test_outcomes_are_all_or_nothing_and_name_each_problem(api: Api) -> None:
    from copilot.db.tables import outcomes

    def stored() -> int:
        with api.rt.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outcomes)).scalar_one())

    h = api.auth("acme", "app")
    run = api.waiting_run("acme", subject="acct-1")
    bad = [
        {"subject_id": "acct-1", "name": "replied", "run_id": run.id},
        {"subject_id": "acct-1", "name": "replied", "value": 3},  # an event is 0 or 1
        {"subject_id": "acct-2", "name": "replied", "run_id": run.id},  # not acct-2's run
    ]
    r = api.client.post("/v1/outcomes", json={"events": bad}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "outcome.invalid"
    assert [p["index"] for p in r.json()["error"]["details"]["problems"]] == [1]
    r = api.client.post("/v1/outcomes", json={"events": [{"subject_id": "a", "name": "churn"}]},
                        headers=h)  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["code"] == "outcome.undeclared"
    r = api.client.post("/v1/outcomes", json={"events": [bad[2]]}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"]["problems"][0]["index"] == 0
    r = api.client.post("/v1/outcomes", json={"events": [], "source": "crm"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    r = api.client.post(
        "/v1/outcomes",
        json={
            "events": [
                {"subject_id": "acct-1", "name": "replied", "observed_at": "2026-01-01T10:00:00"}
            ]
        },
        headers=h,
    )  # a time without a zone
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    assert stored() == 0
    r = api.client.post("/v1/outcomes", json={"events": bad[:1], "source": "crm"}, headers=h)
    assert r.status_code == 201 and r.json() == {"recorded": 1}
    assert stored() == 1
    (event,) = api.rt.audit.query("acme", AuditQuery(event_type="outcomes.recorded"))
    assert event.actor.id == "crm" and event.subject_id == "acct-1"


def test_an_opted_out_subject_gets_a_skipped_run_that_explains_itself(api: Api) -> None:
    h = api.auth("acme", "app")
    put = api.client.put(
        "/v1/subjects/acct-7/preferences",
        json={"opt_out_workflows": ["five_steps"], "snooze_until": "2031-01-01T00:00:00Z"},
        headers=h,
    )
    assert put.status_code == 200
    assert put.json()["snooze_until"].startswith("2031-01-01T00:00:00")
    assert api.client.get("/v1/subjects/acct-7/preferences", headers=h).json() == put.json()
    naive = api.client.put(
        "/v1/subjects/acct-7/preferences", json={"snooze_until": "2031-01-01T00:00:00"}, headers=h
    )
    assert naive.status_code == 422  # a time without a zone is ambiguous
    for when in (17120067001427, 1.5e9, True):  # the document says a date-time string
        epoch = api.client.put(
            "/v1/subjects/acct-7/preferences", json={"snooze_until": when}, headers=h
        )
        assert epoch.status_code == 422
        assert epoch.json()["error"]["details"]["fields"][0]["field"] == "body.snooze_until"
        signal = api.client.post(
            "/v1/signals",
            json={"subject_id": "acct-7", "values": {"seats": 3}, "observed_at": when},
            headers=h,
        )
        assert signal.status_code == 422
        assert signal.json()["error"]["details"]["fields"][0]["field"] == "body.observed_at"
    run = api.client.post(
        "/v1/runs", json={"workflow": "five_steps", "subject_id": "acct-7"}, headers=h
    ).json()
    assert run["state"] == "skipped" and run["reasons"] == ["opted_out:five_steps"]
    why = api.client.get(f"/v1/runs/{run['id']}/explanation", headers=h).json()
    assert "skipped" in why["why"] and "opted_out:five_steps" in why["why"]
    assert why["opt_out"].startswith("PUT /v1/subjects/acct-7/preferences")


def test_healthz_is_503_and_triggers_still_land_when_the_broker_is_away(
    db_url: str, tmp_path: Path
) -> None:
    from tests.support.runtime import build_runtime

    rt = build_runtime(db_url, tmp_path, woken=[])
    rt.close()
    settings = Settings(
        database_url=db_url,
        home=tmp_path,
        workflow_modules="tests.support.flows",
        broker_url="redis://127.0.0.1:1/0",  # nothing listens on port 1
    )
    with TestClient(create_app(settings)) as client:
        r = client.get("/healthz")
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "service.unavailable"
        assert error["details"]["database"] == "ok"
        assert error["details"]["broker"].startswith("unreachable")
        app = client.app.state.runtime  # type: ignore[attr-defined]
        _, token = app.keys.create(tenant="acme", roles=["app"], actor=Actor.system("t"))
        run = client.post(
            "/v1/runs",
            json={"workflow": "five_steps", "subject_id": "acct-1"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert run.status_code == 202  # durable in the database; the sweeper will wake a worker
        assert app.runs.get(run.json()["id"]).state.value == "queued"


def test_metrics_report_runs_approvals_and_audit_heads(api: Api) -> None:
    api.waiting_run()
    api.client.post(
        "/v1/runs",
        json={"workflow": "five_steps", "subject_id": "acct-2"},
        headers=api.auth("globex", "app"),
    )
    assert api.client.get("/metrics").status_code == 401  # it names tenants: its token only
    api.client.app.state.metrics_token = "m-token"  # what COPILOT_METRICS_TOKEN sets
    r = api.client.get("/metrics", headers={"Authorization": "Bearer m-token"})
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = dict(line.rsplit(" ", 1) for line in r.text.splitlines() if not line.startswith("#"))
    assert lines['copilot_runs{tenant="acme",state="waiting"}'] == "1"
    assert lines['copilot_runs{tenant="globex",state="queued"}'] == "1"
    assert lines['copilot_runs_by_level{tenant="acme",level="full"}'] == "1"
    assert lines['copilot_approvals_pending{tenant="acme"}'] == "1"
    assert float(lines['copilot_approvals_oldest_pending_age_seconds{tenant="acme"}']) >= 0
    assert int(lines['copilot_audit_stream_head{stream="acme"}']) == api.rt.audit.head("acme")[0]
    assert lines["copilot_audit_pending_events"] == "0"


def test_unknown_query_parameters_are_refused_by_name(api: Api) -> None:
    r = api.client.get(
        "/v1/approvals", params={"subjectid": "acct-1"}, headers=api.auth("acme", "reviewer")
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "query.subjectid"


def test_a_revoked_key_stops_working_once_the_process_cache_expires(
    db_url: str, tmp_path: Path
) -> None:
    from tests.support.runtime import build_runtime

    rt = build_runtime(db_url, tmp_path, woken=[], api_key_cache_seconds=0.5)
    key, token = rt.keys.create(tenant="acme", roles=["auditor"], actor=Actor.system("t"))
    h = {"Authorization": f"Bearer {token}"}
    app = create_app(rt.settings, runtime=rt)
    now = [1000.0]  # the cache's clock, moved by hand: a slow machine cannot age it early
    app.state.keys.clock = lambda: now[0]
    with TestClient(app) as client:
        assert client.get("/v1/audit/verify", headers=h).status_code == 200
        rt.keys.revoke(key.id, tenant="acme", actor=Actor.system("t"))
        now[0] += 0.4
        assert client.get("/v1/audit/verify", headers=h).status_code == 200  # remembered
        now[0] += 0.2  # past the 0.5 s the settings give
        r = client.get("/v1/audit/verify", headers=h)
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.unauthenticated"
        # and a wrong token is never remembered: each one is checked
        wrong = {"Authorization": f"Bearer {token[:-2]}xx"}
        assert client.get("/v1/audit/verify", headers=wrong).status_code == 401


def test_erasing_a_subject_over_http_stops_its_work_and_keeps_the_trail_valid(api: Api) -> None:
    h = api.auth("acme", "app")
    api.client.post(
        "/v1/signals", json={"subject_id": "acct-1", "values": {"usage_trend": 2.0}}, headers=h
    )
    run = api.waiting_run(subject="acct-1")
    theirs = api.waiting_run("globex", subject="acct-1")  # the same id in another tenant
    r = api.client.delete("/v1/subjects/acct-1", headers=h)
    assert r.status_code == 200, r.text
    counts = r.json()["counts"]
    # The pending email is cancelled; the auto-approved note acted when the run parked
    # (before the erasure), so it stays approved and executed.
    assert counts["runs_cancelled"] == 1 and counts["approvals_cancelled"] == 1
    assert counts["signals"] == 1
    assert api.rt.runs.get(run.id).state.value == "cancelled"
    statuses = {q.kind: (q.status, q.execution_status) for q in api.rt.gate.of_run(run.id)}
    assert statuses["email_customer"][0] == "cancelled"  # nothing executes after the erasure
    assert statuses["post_note"] == ("approved", "done")
    assert api.rt.runs.get(theirs.id).state.value == "waiting"  # globex's subject untouched
    verified = api.client.get("/v1/audit/verify", headers=api.auth("acme", "auditor")).json()
    assert verified["ok"], verified["line"]
    again = api.client.post(
        "/v1/runs", json={"workflow": "five_steps", "subject_id": "acct-1"}, headers=h
    ).json()
    assert again["state"] == "skipped" and again["reasons"] == ["opted_out:all"]
    admin = api.client.delete("/v1/subjects/acct-1", headers=api.auth("acme", "admin"))
    assert admin.status_code == 200 and admin.json()["counts"]["runs_cancelled"] == 0


def test_signals_ingested_over_http_fire_event_triggers(db_url: str, tmp_path: Path) -> None:
    from tests.support.runtime import build_runtime

    rt = build_runtime(db_url, tmp_path, woken=[], workflow_modules="tests.support.triggered_api")
    _, token = rt.keys.create(tenant="acme", roles=["app"], actor=Actor.system("t"))
    h = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(rt.settings, runtime=rt)) as client:
        calm = client.post(
            "/v1/signals", json={"subject_id": "acct-1", "values": {"pulse_usage": 5}}, headers=h
        )
        assert calm.status_code == 201 and calm.json()["fired"] == []
        drop = client.post(
            "/v1/signals", json={"subject_id": "acct-1", "values": {"pulse_usage": -40}}, headers=h
        )
        assert drop.status_code == 201, drop.text
        (fired,) = drop.json()["fired"]
        assert fired["created"] is True and fired["subject_id"] == "acct-1"
        assert rt.runs.get(fired["run_id"], tenant="acme").workflow == "pulse"
