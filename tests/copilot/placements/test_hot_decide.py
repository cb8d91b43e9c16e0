"""`POST /v1/decide`'s hot path (copilot.api.hot) answers exactly as the FastAPI route does.

Every request below goes to two apps on one runtime: the app as served, and the same app
with the hot path taken out. Status, error code and every field but the decision's id and
time must agree, for the well-formed requests the hot path answers itself and for the
malformed ones it hands to FastAPI.
"""

from __future__ import annotations

import json
import re
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


# Edges found by a hostile review: media types, encodings, chunking, odd bodies and
# methods; bytes compared, volatile fields aside.
VOLATILE_BYTES = re.compile(rb'"(decision_id|decided_at|subject_id)":("[^"]*"|[0-9.e+-]+)')


def _both(pair: Any, method: str, make: Any) -> tuple[Any, Any]:
    hot, plain, _ = pair
    a = hot.request(method, "/v1/decide", **make(f"hot-{uuid.uuid4().hex[:8]}"))
    b = plain.request(method, "/v1/decide", **make(f"pln-{uuid.uuid4().hex[:8]}"))
    return a, b


def _same_bytes(a: Any, b: Any, name: str) -> None:
    assert a.status_code == b.status_code, (name, a.text, b.text)
    assert a.headers.get("content-type") == b.headers.get("content-type"), name
    assert VOLATILE_BYTES.sub(b"", a.content) == VOLATILE_BYTES.sub(b"", b.content), (
        name,
        a.text,
        b.text,
    )
    for h in ("allow", "location", "www-authenticate"):
        assert a.headers.get(h) == b.headers.get(h), (name, h)


def test_edges_answer_as_the_route_does(pair: Any, sid: str) -> None:
    app = {"Authorization": f"Bearer {pair[2]['acme', 'app']}"}

    def raw(content: bytes | Any, media: str = "application/json", **h: str) -> Any:
        def make(s: str) -> dict[str, Any]:
            body = content(s) if callable(content) else content
            return {"headers": {**app, "Content-Type": media, **h}, "content": body}

        return make

    def doc(s: str, **more: Any) -> bytes:
        return json.dumps({"placement": "t.daily", "subject_id": s, **more}).encode()

    cases = {
        "uppercase media type": raw(doc, "APPLICATION/JSON"),
        "charset": raw(doc, "application/json; charset=utf-8"),
        "charset, no space, upper": raw(doc, "application/json;charset=UTF-8"),
        "+json": raw(doc, "application/vnd.api+json"),
        "BOM": raw(lambda s: b"\xef\xbb\xbf" + doc(s)),
        "UTF-16": raw(lambda s: doc(s).decode().encode("utf-16")),
        "chunked": raw(lambda s: iter([doc(s)[:10], doc(s)[10:]])),
        "unicode subject": raw(lambda s: doc(s + "-ü😀")),
        "escaped unicode": raw(lambda s: doc(s + "-ü").replace(b"\\u00fc", b"\\u00FC")),
        "lone surrogate": raw(lambda s: doc(s)[:-2] + b'\\ud800"}'),
        "duplicate key": raw(
            lambda s: (
                b'{"placement": "t.nope", "placement": "t.daily", '
                b'"subject_id": "' + s.encode() + b'"}'
            )
        ),
        "context null": raw(lambda s: doc(s, context=None)),
        "context int as float": raw(
            lambda s: doc(s, placement="t.steps", context={"t.level": 1.0})
        ),
        "context bool for int": raw(
            lambda s: doc(s, placement="t.steps", context={"t.level": True})
        ),
        "context string int": raw(lambda s: doc(s, placement="t.steps", context={"t.level": "1"})),
        "huge int": raw(lambda s: doc(s)[:-1] + b', "context": {"t.level": 1' + b"0" * 30 + b"}}"),
        "huge float": raw(lambda s: doc(s)[:-1] + b', "context": {"t.level": 1e400}}'),
        "5000 digits": raw(
            lambda s: doc(s)[:-1] + b', "context": {"t.level": 1' + b"0" * 5000 + b"}}"
        ),
        "trailing garbage": raw(lambda s: doc(s) + b" x"),
        "trailing newline": raw(lambda s: doc(s) + b"\n"),
        "empty": raw(b""),
        "null": raw(b"null"),
        "array": raw(b"[]"),
        "no content type": lambda s: {"headers": app, "content": doc(s)},
        "empty query": lambda s: {
            "headers": {**app, "Content-Type": "application/json"},
            "content": doc(s),
        },
        "lowercase bearer": lambda s: {
            "headers": {
                "Authorization": app["Authorization"].replace("Bearer", "bearer"),
                "Content-Type": "application/json",
            },
            "content": doc(s),
        },
        "two auth headers": lambda s: {
            "headers": [
                ("Authorization", "Bearer cpk_nope_nope"),
                ("Authorization", app["Authorization"]),
                ("Content-Type", "application/json"),
            ],
            "content": doc(s),
        },
    }
    for name, make in cases.items():
        a, b = _both(pair, "POST", make)
        _same_bytes(a, b, name)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "OPTIONS"])
def test_other_methods_answer_as_the_route_does(pair: Any, method: str) -> None:
    app = {"Authorization": f"Bearer {pair[2]['acme', 'app']}"}
    a, b = _both(pair, method, lambda s: {"headers": app})
    _same_bytes(a, b, method)


def test_a_revoked_minting_key_is_refused_on_both_paths(pair: Any, rt: Runtime, sid: str) -> None:
    _, token = rt.keys.create(tenant="acme", roles=["app"], name=f"r3-{sid}",
                              actor=__import__("audit").Actor.system("test"))  # fmt: skip
    p = rt.keys.authenticate(token)
    assert p is not None
    sub = rt.subject_tokens.mint("acme", sid, key_id=p.key_id, now=time.time())
    rt.keys.revoke(p.key_id, tenant="acme", actor=__import__("audit").Actor.system("test"))
    a, b = _both(
        pair,
        "POST",
        lambda s: {
            "headers": {"Authorization": f"Bearer {sub}"},
            "json": {"placement": "t.daily", "subject_id": sid},
        },
    )
    _same_bytes(a, b, "revoked")
    assert a.json()["error"]["code"] == "token.revoked"
