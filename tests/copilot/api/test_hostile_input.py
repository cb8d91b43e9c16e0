"""Hostile input through the real API on SQLite and PostgreSQL: forged cursors, deep JSON.

Each answers a 4xx with a stable code (never a 500) and writes nothing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from copilot.api.depth import MAX_BODY_DEPTH, MAX_DEPTH
from tests.support.api import Api

ID = "0" * 32


def b64(doc: str) -> str:
    return base64.urlsafe_b64encode(doc.encode()).decode()


@pytest.mark.parametrize(
    "doc",
    [
        f'[0, Infinity, "{ID}"]',  # the cursor (an OverflowError and a 500)
        f'[0, -Infinity, "{ID}"]',
        f'[1e400, 0, "{ID}"]',
        f'[0, {"9" * 30}, "{ID}"]',
        f'[0, true, "{ID}"]',
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ],
)
def test_a_forged_queue_cursor_is_422_bad_cursor(api: Api, doc: str) -> None:
    h = api.auth("acme", "reviewer")
    api.waiting_run()
    r = api.client.get("/v1/approvals", params={"cursor": b64(doc)}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "approval.bad_cursor"


def nested(depth: int, leaf: Any = 1) -> Any:
    """A JSON value `depth` containers deep (objects and lists in turn)."""
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def raw_nested(depth: int) -> str:
    """`depth` levels of `[`, as an attacker sends them (no Python recursion to build)."""
    return "[" * depth + "1" + "]" * depth


def post(api: Api, path: str, body: str, role: str = "app", method: str = "POST") -> Any:
    headers = {**api.auth("acme", role), "Content-Type": "application/json"}
    return api.client.request(method, path, content=body.encode(), headers=headers)


def too_deep(r: Any) -> bool:
    return bool(
        r.status_code == 422
        and r.json()["error"]["code"] == "request.too_deep"
        and str(MAX_BODY_DEPTH) in r.json()["error"]["message"]
        and r.json()["error"]["details"] == {"max_depth": MAX_BODY_DEPTH}
    )


@pytest.mark.parametrize("depth", [MAX_BODY_DEPTH + 1, 900, 50_000])
@pytest.mark.parametrize(
    ("method", "path", "role", "template"),
    [
        ("POST", "/v1/runs", "app", '{"workflow": "five_steps", "subject_id": "a", "inputs": {"x": %s}}'),
        ("POST", "/v1/signals", "app", '{"subject_id": "a", "values": {"x": %s}}'),
        ("POST", "/v1/outcomes", "app", '{"events": [{"subject_id": "a", "name": "x", "value": %s}]}'),
        ("PUT", "/v1/subjects/a/preferences", "app", '{"opt_out_workflows": %s}'),
        ("POST", "/v1/keys", "admin", '{"roles": %s}'),
    ],
)  # fmt: skip
def test_json_nested_past_the_limit_is_422_too_deep_before_parsing(
    api: Api, method: str, path: str, role: str, template: str, depth: int
) -> None:
    r = post(api, path, template % raw_nested(depth), role, method)
    assert too_deep(r), (r.status_code, r.text[:300])


def test_a_deep_edit_through_the_decision_endpoint_is_422_too_deep(api: Api) -> None:
    req = api.pending(api.waiting_run())
    path = f"/v1/approvals/{req.id}/decision"
    for depth in (MAX_BODY_DEPTH + 1, 5_000, 100_000):
        edits = '{"body": ' + raw_nested(depth) + "}"
        body = f'{{"decision": "approve", "payload_hash": "{req.payload_hash}", "edits": {edits}}}'
        r = post(api, path, body, "reviewer")
        assert too_deep(r), (depth, r.status_code, r.text[:300])
    assert api.rt.gate.get(req.id).status == "pending"


def test_json_at_the_limits_is_judged_by_the_schema_not_refused_as_too_deep(api: Api) -> None:
    # The value limit (MAX_DEPTH) is the schema's: one level past it is request.invalid
    # naming the field; at it, the request goes through.
    ok = {"workflow": "five_steps", "subject_id": "a", "inputs": {"x": nested(MAX_DEPTH - 1)}}
    r = api.client.post("/v1/runs", json=ok, headers=api.auth("acme", "app"))
    assert r.status_code == 202, r.text
    over = {**ok, "subject_id": "b", "inputs": {"x": nested(MAX_DEPTH + 1)}}
    r = api.client.post("/v1/runs", json=over, headers=api.auth("acme", "app"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    assert f"deeper than {MAX_DEPTH}" in r.text


def test_wide_but_shallow_json_is_not_too_deep(api: Api) -> None:
    wide = json.dumps({"workflow": "five_steps", "subject_id": "a",
                       "inputs": {f"k{i}": [[i]] for i in range(100)}})  # fmt: skip
    r = post(api, "/v1/runs", wide)
    assert r.status_code == 202, r.text
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"workflow": "five_steps", "subject_id": "c",
                       "inputs": {"s": "[" * 10_000 + '\\"{' * 100}})  # fmt: skip
    r = post(api, "/v1/runs", text)
    assert r.status_code == 202, r.text
