"""copilot.js in Debian's Chromium: a page renders the next onboarding step, dismisses it, and
sees the next one, holding only a subject token its server minted with the app key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit import Actor
from copilot.measure.holdouts import held_out
from copilot.settings import Settings
from tests.support.browser import chromium as launch_chromium
from tests.support.live import LiveServer
from tests.support.runtime import build_runtime
from tests.support.services import pg_sqlalchemy_url

ROOT = Path(__file__).resolve().parents[3]
CONTEXT = {"onboarding.steps_done": 0, "onboarding.has_data": False, "onboarding.teammates": 0,
           "onboarding.plan": "trial"}  # fmt: skip
PAGE = (ROOT / "docs" / "examples" / "placements" / "next_step.html").read_text()


@pytest.fixture(scope="module")
def server(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL, app key) of a `copilot api` process with the onboarding journey on PostgreSQL."""
    import psycopg

    home = tmp_path_factory.mktemp("browser")
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = pg_sqlalchemy_url(schema)
    rt = build_runtime(url, home, woken=[], with_flows=False)
    _, key = rt.keys.create(tenant="acme", roles=["app"], name="app", actor=Actor.system("t"))
    rt.close()
    env = {"COPILOT_DATABASE_URL": url, "COPILOT_HOME": str(home),
           "COPILOT_PLACEMENT_MODULES": "copilot.placements.onboarding"}  # fmt: skip
    live = LiveServer(env, home / "api.log").start()
    try:
        yield live.url, key
    finally:
        live.stop()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (never a downloaded browser)."""
    with launch_chromium() as browser:
        yield browser


def test_the_page_renders_the_next_step_dismisses_it_and_sees_the_next(
    server: tuple[str, str], chromium: Any
) -> None:
    base, key = server
    salt = Settings().holdout_salt
    subject = next(s for s in (f"acct-{i}" for i in range(100))
                   if not held_out(s, "placement:onboarding.next_step", 0.1, salt=salt))  # fmt: skip
    # The app's server sends what it knows about the subject, then mints the browser's token
    # (a subject token may not send this as context: the page could forge it)
    sent = httpx.post(f"{base}/v1/signals", headers={"Authorization": f"Bearer {key}"},
                      json={"subject_id": subject, "values": CONTEXT})  # fmt: skip
    assert sent.status_code == 201, sent.text
    minted = httpx.post(f"{base}/v1/subject-tokens", headers={"Authorization": f"Bearer {key}"},
                        json={"subject_id": subject, "ttl_seconds": 300})  # fmt: skip
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    html = (PAGE.replace("TOKEN", json.dumps(token)).replace("SUBJECT", json.dumps(subject))
            .replace("CONTEXT", "{}"))  # fmt: skip
    page = chromium.new_page()
    try:  # the app's page, served on the API's origin for the test
        page.route(f"{base}/app", lambda route: route.fulfill(body=html, content_type="text/html"))
        page.goto(f"{base}/app")
        page.wait_for_function("document.querySelector('#step').textContent !== 'loading'")
        assert page.text_content("#step") == "Connect your first data source"
        assert "opt out of onboarding.next_step" in (page.text_content("#why") or "")
        page.click("#dismiss")
        page.wait_for_function(
            "document.querySelector('#step').textContent !== 'Connect your first data source'"
        )
        assert page.text_content("#step") == "Invite a teammate"
    finally:
        page.close()
    # What the browser did is on the record: two decisions, an impression each, one dismiss
    explained = httpx.get(f"{base}/v1/subjects/{subject}/placements/onboarding.next_step/explain",
                          headers={"Authorization": f"Bearer {key}"}).json()  # fmt: skip
    why = {c["id"]: c["excluded_by"] for c in explained["candidates"]}
    assert any(r.startswith("dismissed_until:") for r in why["connect_data"])
