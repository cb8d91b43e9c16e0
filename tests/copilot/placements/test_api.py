"""The HTTP surface: decide, events, explain, subject tokens; bad input is a 4xx that writes nothing."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from copilot.db.tables import placement_decisions, placement_events
from copilot.governance.sources import put_signals
from copilot.runtime import Runtime
from copilot.server import create_app
from tests.support.api import make_keys


@pytest.fixture(scope="module")
def http(rt: Runtime) -> Iterator[tuple[TestClient, dict[tuple[str, str], str]]]:
    with TestClient(create_app(rt.settings, runtime=rt)) as client:
        yield client, make_keys(rt)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _written(rt: Runtime) -> tuple[int, int, int]:
    with rt.engine.connect() as conn:
        counts = [int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                  for t in (placement_decisions, placement_events)]  # fmt: skip
    rt.audit.settle("acme")
    return counts[0], counts[1], rt.audit.head("acme")[0]


def test_decide_then_events_then_explain_over_http(http: Any, rt: Runtime, sid: str) -> None:
    client, keys = http
    app = _auth(keys["acme", "app"])
    put_signals(rt.engine, "acme", sid, {"t.level": 0})  # what explain reads (it has no context)
    r = client.post("/v1/decide", headers=app, json={"placement": "t.steps", "subject_id": sid})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["item"]["id"] == "step_one" and d["probability"] == 1.0 and d["policy"] == "rules"
    assert d["explanation"].startswith("You see \u201cStep one\u201d")
    ev = {"event_id": f"{sid}-1", "kind": "dismiss"}
    first = client.post(f"/v1/decisions/{d['decision_id']}/events", headers=app, json=ev)
    again = client.post(f"/v1/decisions/{d['decision_id']}/events", headers=app, json=ev)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True
    r = client.get(f"/v1/subjects/{sid}/placements/t.steps/explain", headers=app)
    assert r.status_code == 200, r.text
    by_id = {c["id"]: c for c in r.json()["candidates"]}
    assert by_id["step_one"]["excluded_by"][0].startswith("dismissed_until:")
    assert set(by_id) == {"step_one", "step_two", "step_flag", "generic"}


def test_a_subject_token_decides_and_posts_events_for_its_subject_only(
    http: Any, rt: Runtime, sid: str
) -> None:
    client, keys = http
    r = client.post(
        "/v1/subject-tokens", headers=_auth(keys["acme", "app"]), json={"subject_id": sid}
    )
    assert r.status_code == 201, r.text
    token = _auth(r.json()["token"])
    r = client.post("/v1/decide", headers=token, json={"placement": "t.daily", "subject_id": sid})
    assert r.status_code == 200 and r.json()["item"]["id"] == "first"
    decision = r.json()["decision_id"]
    r = client.post(
        f"/v1/decisions/{decision}/events",
        headers=token,
        json={"event_id": f"{sid}-i", "kind": "impression"},
    )
    assert r.status_code == 201
    # The token is for decide and events only
    assert (
        client.get(f"/v1/subjects/{sid}/placements/t.daily/explain", headers=token).status_code
        == 401
    )


def _minter(rt: Runtime, keys: dict[tuple[str, str], str]) -> str:
    """The id of acme's live app key (a token's minting key must be unrevoked)."""
    who = rt.keys.authenticate(keys["acme", "app"])
    assert who is not None
    return who.key_id


def _bad_requests(
    client: TestClient, keys: dict[tuple[str, str], str], rt: Runtime, sid: str
) -> list[tuple[str, dict[str, Any], dict[str, str], int, str]]:
    app = _auth(keys["acme", "app"])
    minter = _minter(rt, keys)
    other = _auth(rt.subject_tokens.mint("acme", "someone-else", key_id=minter, now=time.time()))
    expired = _auth(rt.subject_tokens.mint("acme", sid, key_id="k", now=time.time() - 901))
    forged = _auth(rt.subject_tokens.mint("acme", sid, key_id="k", now=time.time())[:-3] + "AAA")
    body = {"placement": "t.steps", "subject_id": sid}
    return [
        ("/v1/decide", {**body, "placement": "t.nope"}, app, 404, "placement.unknown"),
        (
            "/v1/decide",
            {**body, "context": {"t.secret": 1}},
            app,
            422,
            "placement.context_undeclared",
        ),
        (
            "/v1/decide",
            {**body, "context": {"t.level": "high"}},
            app,
            422,
            "placement.context_invalid",
        ),
        ("/v1/decide", body, other, 403, "token.wrong_subject"),
        ("/v1/decide", body, expired, 401, "token.expired"),
        ("/v1/decide", body, forged, 401, "token.invalid"),
        ("/v1/decide", body, _auth(keys["acme", "reviewer"]), 403, "auth.forbidden"),
        ("/v1/decide", {**body, "extra": 1}, app, 422, "request.invalid"),
        (
            "/v1/decisions/" + "0" * 32 + "/events",
            {"event_id": "e", "kind": "accept"},
            app,
            404,
            "placement.decision_not_found",
        ),
    ]


def test_bad_input_is_a_4xx_with_a_stable_code_and_writes_nothing(
    http: Any, rt: Runtime, sid: str
) -> None:
    client, keys = http
    ok = client.post("/v1/decide", headers=_auth(keys["acme", "app"]),
                     json={"placement": "t.steps", "subject_id": sid, "context": {"t.level": 0}}).json()  # fmt: skip
    cases = _bad_requests(client, keys, rt, sid)
    other = _auth(
        rt.subject_tokens.mint("acme", "someone-else", key_id=_minter(rt, keys), now=time.time())
    )
    cases += [  # events: another subject's token, an event on a decision of another tenant
        (f"/v1/decisions/{ok['decision_id']}/events", {"event_id": "t1", "kind": "accept"}, other, 403, "token.wrong_subject"),
        (f"/v1/decisions/{ok['decision_id']}/events", {"event_id": "t1", "kind": "accept"},
         _auth(keys["globex", "app"]), 404, "placement.decision_not_found"),
        (f"/v1/decisions/{ok['decision_id']}/events", {"event_id": "t1", "kind": "accept", "until": 5.0},
         _auth(keys["acme", "app"]), 422, "placement.event_invalid"),
    ]  # fmt: skip
    before = _written(rt)
    for path, body, headers, status, code in cases:
        r = client.post(path, headers=headers, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, body, r.text)
    assert _written(rt) == before


def test_mint_refuses_a_lifetime_over_an_hour(http: Any, sid: str) -> None:
    client, keys = http
    r = client.post("/v1/subject-tokens", headers=_auth(keys["acme", "app"]),
                    json={"subject_id": sid, "ttl_seconds": 7200})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"


def test_copilot_js_is_served_without_a_key(http: Any) -> None:
    client, _ = http
    r = client.get("/copilot.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "Copilot.prototype.decide" in r.text and "import " not in r.text


def test_the_subject_page_shows_decisions_events_and_why_not_shown(
    http: Any, rt: Runtime, sid: str
) -> None:
    client, keys = http
    app = _auth(keys["acme", "app"])
    d = client.post("/v1/decide", headers=app,
                    json={"placement": "t.steps", "subject_id": sid, "context": {"t.level": 0}}).json()  # fmt: skip
    client.post(f"/v1/decisions/{d['decision_id']}/events", headers=app,
                json={"event_id": f"{sid}-d", "kind": "dismiss"})  # fmt: skip
    form = client.get("/ui/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    client.post("/ui/signin", data={"key": keys["acme", "app"], "csrf": csrf.group(1)})
    page = client.get(f"/ui/subjects/{sid}").text
    assert "Placement decisions" in page and "step_one" in page
    assert "dismiss" in page and "dismissed_until:" in page  # the event, and what it excludes now
    assert "You see \u201cStep one\u201d" in html.unescape(page)
    assert 'value="t.steps"' in page  # a placement can be opted out of like a workflow


def test_cors_admits_only_the_configured_origins_for_decide(rt: Runtime) -> None:
    settings = rt.settings.model_copy(update={"cors_origins": "https://app.example.com"})
    with TestClient(create_app(settings, runtime=rt)) as client:
        ask = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
        ok = client.options("/v1/decide", headers={"Origin": "https://app.example.com", **ask})
        other = client.options("/v1/decide", headers={"Origin": "https://evil.example", **ask})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in other.headers
