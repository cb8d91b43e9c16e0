"""Sessions and bad input on the pages, in-process (the browser tests cover the flows)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from audit import Actor
from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.runtime import build_runtime


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    rt = build_runtime(sqlite_url, tmp_path, woken=[])
    with TestClient(create_app(rt.settings, runtime=rt), follow_redirects=False) as client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt))


def sign_in(api: Api, token: str) -> str:
    """Sign the client in; returns the session's CSRF token (read from a page's form)."""
    form = api.client.get("/ui/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = api.client.post("/ui/signin", data={"key": token, "csrf": csrf.group(1)})
    assert r.status_code == 303
    page = api.client.get(r.headers["location"]).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_signing_out_ends_the_session_on_the_server(api: Api) -> None:
    csrf = sign_in(api, api.tokens["acme", "reviewer"])
    cookie = api.client.cookies["copilot_session"]
    assert api.client.post("/ui/signout", data={"csrf": csrf}).status_code == 303
    api.client.cookies.set("copilot_session", cookie, path="/ui")  # replaying the old cookie
    assert api.client.get("/ui/inbox").status_code == 303


def test_revoking_the_key_ends_its_sessions(api: Api) -> None:
    key, token = api.rt.keys.create(tenant="acme", roles=["reviewer"], actor=Actor.system("t"))
    sign_in(api, token)
    assert api.client.get("/ui/inbox").status_code == 200
    api.rt.keys.revoke(key.id, tenant="acme", actor=Actor.system("t"))
    assert api.client.get("/ui/inbox").status_code == 303


def test_bad_input_gets_a_4xx_page_and_changes_nothing(api: Api) -> None:
    run = api.waiting_run("acme")
    req = api.pending(run)
    csrf = sign_in(api, api.tokens["acme", "reviewer"])
    assert api.client.get("/ui/inbox?risk=extreme").status_code == 422
    assert api.client.get("/ui/inbox?riks=low").status_code == 422  # unknown parameter
    assert api.client.get("/ui/approvals/not-an-id").status_code == 422
    assert api.client.get("/ui/approvals/" + "0" * 32).status_code == 404
    post = f"/ui/approvals/{req.id}/decide"
    base = {"csrf": csrf, "payload_hash": req.payload_hash}
    assert api.client.post(post, data={**base, "action": "explode"}).status_code == 422
    r = api.client.post(post, data={**base, "action": "edit", "edits": "[1, 2]"})
    assert r.status_code == 422 and "must be a JSON object" in r.text
    r = api.client.post(post, data={**base, "action": "edit", "edits": '{"nonsense_field": 1}'})
    assert r.status_code == 422 and 'role="alert"' in r.text
    assert api.rt.gate.get(req.id).status == "pending" and len(api.rt.gate.of_run(run.id)) == 2
    r = api.client.get("/ui/audit")
    assert r.status_code == 403 and "auditor" in r.text  # a reviewer is not an auditor
    assert api.client.get("/v1/approvals").json()["error"]["code"] == "auth.unauthenticated"
