"""Hostile input to the reviewer's pages, in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot.api.depth import MAX_BODY_DEPTH
from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.runtime import build_runtime


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    rt = build_runtime(db_url, tmp_path, woken=[])
    with TestClient(create_app(rt.settings, runtime=rt), follow_redirects=False) as client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt))


def sign_in(api: Api, token: str) -> str:
    """Sign the client in; returns the session's CSRF token."""
    form = api.client.get("/ui/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = api.client.post("/ui/signin", data={"key": token, "csrf": csrf.group(1)})
    assert r.status_code == 303
    found = re.search(r'name="csrf" value="([^"]+)"', api.client.get(r.headers["location"]).text)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("depth", [MAX_BODY_DEPTH + 1, 2_000, 30_000])
def test_a_deeply_nested_edit_is_shown_as_too_deep_and_changes_nothing(
    api: Api, depth: int
) -> None:
    run = api.waiting_run("acme")
    req = api.pending(run)
    csrf = sign_in(api, api.tokens["acme", "reviewer"])
    edits = '{"body": ' + "[" * depth + "]" * depth + "}"
    r = api.client.post(
        f"/ui/approvals/{req.id}/decide",
        data={"csrf": csrf, "payload_hash": req.payload_hash, "action": "edit", "edits": edits},
    )
    assert r.status_code == 422, r.text[:300]
    assert f"more than {MAX_BODY_DEPTH} levels deep" in r.text and 'role="alert"' in r.text
    assert api.rt.gate.get(req.id).status == "pending" and len(api.rt.gate.of_run(run.id)) == 2
