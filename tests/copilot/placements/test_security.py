"""The hostile review's holes (issue 21), each refused at its root: a browser's context
cannot override the server's signals, event ids are scoped to their decision, a malformed
token is a 401, events are dated within their decision's life, the token secret survives
concurrent first starts, and a revoked key's tokens stop working."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import Actor
from copilot.governance.sources import put_signals
from copilot.placements.tokens import TokenSigner
from copilot.runtime import Runtime
from copilot.server import create_app
from tests.support.api import make_keys


@pytest.fixture(scope="module")
def http(rt: Runtime) -> Iterator[tuple[TestClient, dict[tuple[str, str], str]]]:
    with TestClient(create_app(rt.settings, runtime=rt), raise_server_exceptions=False) as client:
        yield client, make_keys(rt)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(client: TestClient, keys: Any, subject: str) -> dict[str, str]:
    r = client.post("/v1/subject-tokens", headers=_auth(keys["acme", "app"]),
                    json={"subject_id": subject})  # fmt: skip
    assert r.status_code == 201, r.text
    return _auth(str(r.json()["token"]))


def _code(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_a_subject_token_cannot_override_stored_signals_through_context(
    http: Any, rt: Runtime, sid: str
) -> None:
    client, keys = http
    put_signals(rt.engine, "acme", sid, {"t.level": 5, "t.flag": False})  # the server's truth
    tok = _token(client, keys, sid)
    forged = client.post("/v1/decide", headers=tok, json={
        "placement": "t.steps", "subject_id": sid, "context": {"t.level": 0}})  # fmt: skip
    assert _code(forged) == (403, "token.context_refused"), forged.text
    # a declared client signal is accepted, but the stored value wins over the page's
    r = client.post("/v1/decide", headers=tok, json={
        "placement": "t.steps", "subject_id": sid, "context": {"t.flag": True}})  # fmt: skip
    assert r.status_code == 200 and r.json()["item"]["id"] == "generic", r.text
    logged = rt.decider.recent("acme", sid)["decisions"]
    assert len(logged) == 1  # the refused decide wrote nothing
    # the app's server (an app key) may still send fresher context than what is stored
    r = client.post("/v1/decide", headers=_auth(keys["acme", "app"]), json={
        "placement": "t.steps", "subject_id": sid, "context": {"t.level": 0}})  # fmt: skip
    assert r.json()["item"]["id"] == "step_one", r.text


def test_a_client_signal_fills_a_gap_the_server_left(http: Any, rt: Runtime, sid: str) -> None:
    client, keys = http
    put_signals(rt.engine, "acme", sid, {"t.level": 5})
    r = client.post("/v1/decide", headers=_token(client, keys, sid), json={
        "placement": "t.steps", "subject_id": sid, "context": {"t.flag": True}})  # fmt: skip
    assert r.status_code == 200 and r.json()["item"]["id"] == "step_flag", r.text


def test_event_ids_are_scoped_to_their_decision(http: Any, sid: str) -> None:
    client, keys = http
    victim, attacker = sid + "-v", sid + "-a"
    app = _auth(keys["acme", "app"])
    dv = client.post("/v1/decide", headers=app,
                     json={"placement": "t.daily", "subject_id": victim}).json()  # fmt: skip
    tok = _token(client, keys, attacker)
    da = client.post("/v1/decide", headers=tok,
                     json={"placement": "t.daily", "subject_id": attacker}).json()  # fmt: skip
    # the attacker squats the victim's predictable dismiss id, and reuses its impression id
    squat = {"event_id": f"dismiss-{victim}", "kind": "dismiss"}
    seen = {"event_id": f"impression-{victim}", "kind": "impression"}
    assert client.post(f"/v1/decisions/{dv['decision_id']}/events", headers=app,
                       json=seen).status_code == 201  # fmt: skip
    assert client.post(f"/v1/decisions/{da['decision_id']}/events", headers=tok,
                       json=squat).status_code == 201  # fmt: skip
    reused = client.post(f"/v1/decisions/{da['decision_id']}/events", headers=tok, json=seen)
    assert reused.status_code == 201 and dv["decision_id"] not in reused.text, reused.text
    mine = client.post(f"/v1/decisions/{dv['decision_id']}/events", headers=app, json=squat)
    assert mine.status_code == 201 and mine.json()["duplicate"] is False, mine.text
    # within one decision an id stays idempotent, and a conflict names no decision
    other = client.post(f"/v1/decisions/{dv['decision_id']}/events", headers=app,
                        json={**seen, "kind": "accept"})  # fmt: skip
    assert _code(other) == (409, "placement.event_conflict")
    assert dv["decision_id"] not in other.text and da["decision_id"] not in other.text


def test_a_non_ascii_subject_token_is_a_401(http: Any) -> None:
    client, _ = http
    headers = {"Authorization": "Bearer cps_eyJ.\u00e9\u00e9".encode("latin-1")}
    r = client.post("/v1/decide", headers=headers,  # type: ignore[arg-type]
                    json={"placement": "t.daily", "subject_id": "acct-x"})  # fmt: skip
    assert _code(r) == (401, "token.invalid"), r.text


@pytest.mark.parametrize("at", [0.0, 32503680000.0], ids=["before_its_decision", "in_the_future"])
def test_an_event_is_dated_within_its_decisions_life(http: Any, sid: str, at: float) -> None:
    client, keys = http
    tok = _token(client, keys, sid)
    d = client.post("/v1/decide", headers=tok,
                    json={"placement": "t.daily", "subject_id": sid}).json()  # fmt: skip
    r = client.post(f"/v1/decisions/{d['decision_id']}/events", headers=tok,
                    json={"event_id": f"{sid}-e", "kind": "accept", "at": at})  # fmt: skip
    assert _code(r) == (422, "placement.event_time"), r.text
    ok = client.post(f"/v1/decisions/{d['decision_id']}/events", headers=tok,
                     json={"event_id": f"{sid}-e", "kind": "accept", "at": d["decided_at"]})  # fmt: skip
    assert ok.status_code == 201, ok.text


def test_concurrent_first_starts_share_one_token_secret(tmp_path: Any) -> None:
    problems: list[str] = []
    for n in range(30):
        path = tmp_path / f"home{n}" / "subject-token.key"
        barrier = threading.Barrier(8)
        signers: list[TokenSigner] = []

        def start(path: Any, barrier: threading.Barrier, signers: list[TokenSigner]) -> None:
            barrier.wait()
            try:
                signers.append(TokenSigner.load_or_create(path))
            except Exception as e:  # every failure is the finding
                problems.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=start, args=(path, barrier, signers)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len({s._secret for s in signers}) != 1 or len(signers) != 8:
            problems.append("not one secret for all")
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert not problems, sorted(set(problems))


def test_a_revoked_keys_subject_tokens_stop_working(http: Any, rt: Runtime, sid: str) -> None:
    client, keys = http
    key, secret = rt.keys.create(tenant="acme", roles=["app"], name=f"leaky-{sid}",
                                 actor=Actor.system("test"))  # fmt: skip
    r = client.post("/v1/subject-tokens", headers=_auth(secret),
                    json={"subject_id": sid, "ttl_seconds": 3600})  # fmt: skip
    tok = _auth(r.json()["token"])
    d = client.post("/v1/decide", headers=tok, json={"placement": "t.daily", "subject_id": sid})
    assert d.status_code == 200, d.text
    gone = client.delete(f"/v1/keys/{key.id}", headers=_auth(keys["acme", "admin"]))
    assert gone.status_code < 300, gone.text
    r = client.post("/v1/decide", headers=tok, json={"placement": "t.daily", "subject_id": sid})
    assert _code(r) == (401, "token.revoked"), r.text
    r = client.post(f"/v1/decisions/{d.json()['decision_id']}/events", headers=tok,
                    json={"event_id": f"{sid}-late", "kind": "accept"})  # fmt: skip
    assert _code(r) == (401, "token.revoked"), r.text
