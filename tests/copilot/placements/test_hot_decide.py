"""`POST /v1/decide`'s hot path (copilot.api.hot) answers exactly as the FastAPI route does.

Every request below goes to two apps on one runtime: the app as served, and the same app
with the hot path taken out. Status, error code and every field but the decision's id and
time must agree, for the well-formed requests the hot path answers itself and for the
malformed ones it hands to FastAPI.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from copilot.api.hot import HotDecide
from copilot.runtime import Runtime
from copilot.server import create_app
from tests.support.api import make_keys

VOLATILE = ("decision_id", "decided_at")


def _without_hot_path(app: FastAPI) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotDecide]
    return app


@pytest.fixture(scope="module")
def pair(rt: Runtime) -> Iterator[tuple[TestClient, TestClient, dict[tuple[str, str], str]]]:
    keys = make_keys(rt)
    with (
        TestClient(create_app(rt.settings, runtime=rt)) as hot,
        TestClient(_without_hot_path(create_app(rt.settings, runtime=rt))) as plain,
    ):
        yield hot, plain, keys


def _same(hot: TestClient, plain: TestClient, make: Any) -> dict[str, Any]:
    """`make(subject)` gives the request; each app decides for a fresh subject of its own
    (a decide spends the subject's caps), so only the subject's id may differ."""
    a = hot.request("POST", "/v1/decide", **make(f"hot-{uuid.uuid4().hex[:8]}"))
    b = plain.request("POST", "/v1/decide", **make(f"plain-{uuid.uuid4().hex[:8]}"))
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"]
    left, right = a.json(), b.json()
    for doc in (left, right):
        for key in (*VOLATILE, "subject_id"):
            doc.pop(key, None)
    assert left == right
    return {"status": a.status_code, **left}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_answer_matches_the_fastapi_route(pair: Any, rt: Runtime, sid: str) -> None:
    hot, plain, keys = pair
    app = _auth(keys["acme", "app"])

    def body(subject: str, **more: Any) -> dict[str, Any]:
        return {"placement": "t.daily", "subject_id": subject, **more}

    def raw(content: bytes, media: str = "application/json") -> Any:
        return lambda s: {"headers": {**app, "Content-Type": media}, "content": content}

    cases: list[tuple[str, Any, int, str | None]] = [
        ("well-formed", lambda s: {"headers": app, "json": body(s)}, 200, None),
        ("with context", lambda s: {"headers": app, "json": body(
            s, placement="t.steps", context={"t.level": 1})}, 200, None),
        ("unknown placement", lambda s: {"headers": app, "json": body(s, placement="t.nope")},
         404, "placement.unknown"),
        ("undeclared context", lambda s: {"headers": app, "json": body(s, context={"x": 1})},
         422, "placement.context_undeclared"),
        ("no key", lambda s: {"json": body(s)}, 401, "auth.unauthenticated"),
        ("unknown key", lambda s: {"headers": _auth("cpk_nope_nope"), "json": body(s)}, 401,
         "auth.unauthenticated"),
        ("reviewer key", lambda s: {"headers": _auth(keys["acme", "reviewer"]),
                                    "json": body(s)}, 403, "auth.forbidden"),
        ("extra field", lambda s: {"headers": app, "json": body(s, tenant="globex")}, 422,
         "request.invalid"),
        ("bad subject id", lambda s: {"headers": app, "json": body("x" * 1000)}, 422,
         "request.invalid"),
        ("not JSON", raw(b"{nope"), 422, None),
        ("NaN", raw(b'{"placement": "t.held", "subject_id": "s", "context": {"t.plan": NaN}}'),
         422, None),
        ("query string", lambda s: {"headers": app, "json": body(s), "params": {"dry": "1"}},
         422, None),
        ("text/plain", raw(json.dumps(body("s")).encode(), "text/plain"), 422, None),
    ]  # fmt: skip
    for name, make, status, code in cases:
        got = _same(hot, plain, make)
        assert got["status"] == status, (name, got)
        if code is not None:
            assert got["error"]["code"] == code, (name, got)


def test_a_subject_token_is_held_to_its_subject_on_both_paths(
    pair: Any, rt: Runtime, sid: str
) -> None:
    hot, plain, keys = pair
    minter = rt.keys.authenticate(keys["acme", "app"])
    assert minter is not None
    token = _auth(rt.subject_tokens.mint("acme", sid, key_id=minter.key_id, now=time.time()))
    mine = hot.post("/v1/decide", headers=token, json={"placement": "t.daily", "subject_id": sid})
    assert mine.status_code == 200, mine.text
    other = _same(
        hot, plain, lambda s: {"headers": token, "json": {"placement": "t.daily", "subject_id": s}}
    )
    assert (other["status"], other["error"]["code"]) == (403, "token.wrong_subject")


def test_a_well_formed_decide_never_reaches_the_router(pair: Any, rt: Runtime, sid: str) -> None:
    keys = pair[2]
    app = create_app(rt.settings, runtime=rt)
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") != "/v1/decide"]
    with TestClient(app) as client:
        r = client.post("/v1/decide", headers=_auth(keys["acme", "app"]),
                        json={"placement": "t.daily", "subject_id": sid})  # fmt: skip
    assert r.status_code == 200, r.text
