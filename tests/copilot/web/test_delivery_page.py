"""The approval page shows where the approved action's delivery stands; a dead one is retried
or cancelled from there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot.server import create_app
from tests.support.api import Api, make_keys
from tests.support.feed import approved_run
from tests.support.runtime import build_runtime


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    rt = build_runtime(sqlite_url, tmp_path, woken=[], delivery_max_attempts=1)
    with TestClient(create_app(rt.settings, runtime=rt), follow_redirects=False) as client:
        yield Api(rt=rt, client=client, tokens=make_keys(rt))


def sign_in(api: Api, token: str) -> str:
    form = api.client.get("/ui/signin").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = api.client.post("/ui/signin", data={"key": token, "csrf": csrf.group(1)})
    page = api.client.get(r.headers["location"]).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def state_on(page: str) -> str:
    found = re.search(r'data-testid="delivery-state">([a-z]+)<', page)
    assert found is not None, page
    return found.group(1)


def test_a_reviewer_sees_a_dead_delivery_and_retries_then_cancels_it(api: Api) -> None:
    run_id = approved_run(api.rt)
    email = next(r for r in api.rt.gate.of_run(run_id) if r.kind == "email_customer")
    (claimed,) = api.rt.deliveries.claim("acme", "crm", kind="email_customer")
    api.rt.deliveries.ack("acme", claimed.id, claimed.claim or "", "failed", {"error": "smtp 550"})
    csrf = sign_in(api, api.tokens["acme", "reviewer"])
    page = api.client.get(f"/ui/approvals/{email.id}").text
    assert state_on(page) == "dead" and "Last error: smtp 550" in page
    assert "email_customer via outbox: dead (attempt 1)" in page  # the run timeline says so too
    post = f"/ui/approvals/{email.id}/delivery"
    r = api.client.post(post, data={"csrf": csrf, "action": "retry"})
    assert r.status_code == 303
    assert state_on(api.client.get(f"/ui/approvals/{email.id}").text) == "ready"
    r = api.client.post(post, data={"csrf": csrf, "action": "cancel", "reason": " "})
    assert r.status_code == 422 and "Give a reason" in r.text
    r = api.client.post(post, data={"csrf": csrf, "action": "cancel", "reason": "sent by phone"})
    assert r.status_code == 303
    page = api.client.get(f"/ui/approvals/{email.id}").text
    assert state_on(page) == "cancelled" and "Retry delivery" not in page
    r = api.client.post(post, data={"csrf": csrf, "action": "retry"})
    assert r.status_code == 409 and 'role="alert"' in r.text  # shown on the page, nothing changed
    r = api.client.post(post, data={"csrf": "forged", "action": "retry"})
    assert r.status_code == 403
