"""The pages in a real browser: reviewers decide, an auditor verifies, tenants stay apart.

Each page's screenshot is saved to docs/screenshots/ (docs/concepts/web-pages.md shows them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.site import Site

SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
LAPTOP = {"width": 1366, "height": 860}


def sign_in(browser: Any, site: Site, name: str) -> Any:
    """A fresh browser context signed in as `name`; returns its page."""
    page = browser.new_context(viewport=LAPTOP).new_page()
    page.goto(site.url + "/ui/")
    assert page.url.startswith(site.url + "/ui/signin")  # not signed in: sent to sign in
    page.get_by_label("API key").fill(site.tokens[name])
    page.get_by_role("button", name="Sign in").click()
    assert name in page.get_by_test_id("who").inner_text()
    return page


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_reviewers_decide_and_an_auditor_sees_it_verified(chromium: Any, site: Site) -> None:
    # Given acme's queue: next-action and tone-draft requests waiting for a person
    drafts, reviews = site.pending("send_email"), site.pending("request_review")
    guides = site.pending("send_onboarding_guide")
    assert len(drafts) >= 3 and reviews and guides

    login = chromium.new_context(viewport=LAPTOP).new_page()
    login.goto(site.url + "/ui/signin")
    shot(login, "signin")
    login.context.close()

    ana = sign_in(chromium, site, "ana-reviewer")
    total = len(site.rt.gate.queue("acme", limit=200)[0])
    assert ana.get_by_test_id("counts").inner_text().startswith(f"{total} pending")
    rows = ana.locator("tbody tr[data-approval]")
    assert rows.count() == total
    shot(ana, "inbox")
    # Filters narrow the queue (server-side, by kind)
    ana.get_by_label("Kind").select_option("send_email")
    ana.get_by_role("button", name="Filter").click()
    assert ana.locator("tbody tr[data-approval]").count() == len(drafts)

    # Approve one: a tone draft, whose page explains itself and shows the tone match
    ana.goto(f"{site.url}/ui/approvals/{drafts[0].id}")
    assert "Why am I seeing this?" in ana.content()
    assert "Match score" in ana.get_by_test_id("tone").inner_text()
    assert "recent_messages" in ana.content()  # a signal used, with its freshness
    assert ana.get_by_test_id("timeline").locator("li").count() >= 3
    shot(ana, "approval")
    ana.get_by_role("button", name="Approve", exact=True).click()
    assert "approved" in ana.get_by_test_id("status").inner_text()
    assert site.rt.gate.get(drafts[0].id).status == "approved"

    # Reject one: without a reason it is refused inline; with one it is recorded
    ana.goto(f"{site.url}/ui/approvals/{drafts[1].id}")
    ana.get_by_role("button", name="Reject", exact=True).click()
    assert "reason" in ana.get_by_test_id("error").inner_text().lower()
    assert site.rt.gate.get(drafts[1].id).status == "pending"
    ana.get_by_label("Reason for rejecting").fill("Wrong contact for this account")
    ana.get_by_role("button", name="Reject", exact=True).click()
    assert "rejected" in ana.get_by_test_id("status").inner_text()
    assert site.rt.gate.get(drafts[1].id).reason == "Wrong contact for this account"

    # Edit then approve: a bad edit is shown inline and nothing changes; a good one makes v2
    ana.goto(f"{site.url}/ui/approvals/{drafts[2].id}")
    ana.get_by_label("Edit the payload (JSON), then approve").fill("{not json")
    ana.get_by_role("button", name="Save edit and approve").click()
    assert "not valid JSON" in ana.get_by_test_id("error").inner_text()
    edited = {**drafts[2].payload, "subject": "Quick check-in from your account team"}
    ana.get_by_label("Edit the payload (JSON), then approve").fill(json.dumps(edited))
    ana.get_by_role("button", name="Save edit and approve").click()
    status = ana.get_by_test_id("status").inner_text()
    assert "approved" in status and "version 2" in status
    assert "Quick check-in" in ana.get_by_test_id("payload").inner_text()

    # A conflict: Ana has the page open; Ben decides first (over the HTTP API)
    target = reviews[0]
    ana.goto(f"{site.url}/ui/approvals/{target.id}")
    ben = httpx.post(f"{site.url}/v1/approvals/{target.id}/decision",
                     headers={"Authorization": f"Bearer {site.tokens['ben-reviewer']}"},
                     json={"decision": "reject", "payload_hash": target.payload_hash,
                           "reason": "Customer asked for no review requests"})  # fmt: skip
    assert ben.status_code == 200, ben.text
    ana.get_by_role("button", name="Approve", exact=True).click()
    assert "Someone else decided first" in ana.get_by_test_id("error").inner_text()
    assert "rejected" in ana.get_by_test_id("status").inner_text()
    shot(ana, "conflict")
    assert site.rt.gate.get(target.id).status == "rejected"

    # The auditor: the trail verifies, the checkpoint is shown, the decisions are there
    ada = sign_in(chromium, site, "ada-auditor")
    assert ada.url.endswith("/ui/audit")
    assert ada.get_by_test_id("verdict").inner_text().startswith("Verified")
    assert "entries" in ada.get_by_test_id("checkpoint").inner_text()
    ada.get_by_label("Type").fill("approval.vote")
    ada.get_by_role("button", name="Filter").click()
    decided = ada.locator("tbody tr[data-event='approval.vote']")
    assert decided.count() >= 4
    text = ada.locator("table.trail").inner_text()
    assert "human:ana-reviewer" in text and "human:ben-reviewer" in text
    shot(ada, "audit")
    with ada.expect_download() as dl:
        ada.get_by_role("link", name="Download the export bundle").click()
    assert dl.value.suggested_filename == "audit-acme.tar.gz"

    # The report: its plots are images the browser decoded
    ada.goto(site.url + "/ui/report")
    figures = ada.locator("figure img")
    assert figures.count() >= 1
    assert all(figures.nth(i).evaluate("img => img.naturalWidth > 0")
               for i in range(figures.count()))  # fmt: skip
    shot(ada, "report")


def test_a_reviewer_of_another_tenant_sees_none_of_it(chromium: Any, site: Site) -> None:
    acme, _ = site.rt.gate.queue("acme", status=None, limit=200)
    assert acme and site.rt.gate.queue("globex")[0]
    gus = sign_in(chromium, site, "gus-reviewer")
    body = gus.content()
    assert all(r.id not in body for r in site.rt.gate.queue("acme", limit=200)[0])
    assert all(r.tenant == "globex" for r in site.rt.gate.queue("globex", limit=200)[0])
    answer = gus.goto(f"{site.url}/ui/approvals/{acme[0].id}")
    assert answer is not None and answer.status == 404
    assert acme[0].payload_hash not in gus.content()
    answer = gus.goto(f"{site.url}/ui/audit")  # a reviewer is not an auditor
    assert answer is not None and answer.status == 403


def test_subject_page_sets_preferences_and_lists_runs(chromium: Any, site: Site) -> None:
    app = sign_in(chromium, site, "acme-app")
    app.goto(site.url + "/ui/subjects/acct-001")
    assert app.locator("section[aria-labelledby=r-h] tbody tr").count() == len(
        site.rt.runs.list_runs("acme", subject_id="acct-001")
    )
    app.get_by_label("tone_draft").check()
    app.get_by_label("Snoozed until").fill("2030-01-31")
    app.get_by_role("button", name="Save preferences").click()
    prefs = site.rt.consent.get("acme", "acct-001")
    assert prefs.opt_out_workflows == ("tone_draft",) and prefs.snooze_until is not None
    assert app.get_by_label("tone_draft").is_checked()
    shot(app, "subject")


@pytest.mark.parametrize("path", ["/ui/inbox", "/ui/audit", "/ui/report", "/ui/subjects/acct-001"])
def test_pages_need_a_session(site: Site, path: str) -> None:
    r = httpx.get(site.url + path)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/signin")


def test_the_session_cookie_is_httponly_and_forms_need_the_csrf_token(site: Site) -> None:
    with httpx.Client(base_url=site.url) as c:
        form = c.get("/ui/signin")
        token = form.text.split('name="csrf" value="')[1].split('"')[0]
        bad = c.post("/ui/signin", data={"key": site.tokens["ana-reviewer"], "csrf": "forged"})
        assert bad.status_code == 403 and "copilot_session" not in bad.cookies
        token = bad.text.split('name="csrf" value="')[1].split('"')[0]  # the form is re-issued
        ok = c.post("/ui/signin", data={"key": site.tokens["ana-reviewer"], "csrf": token})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/ui" in cookie
        pending = site.pending("send_onboarding_guide")[0]
        forged = c.post(f"/ui/approvals/{pending.id}/decide",
                        data={"csrf": "x" * 43, "payload_hash": pending.payload_hash,
                              "action": "approve"})  # fmt: skip
        assert forged.status_code == 403 and "web.csrf" in forged.text
        assert site.rt.gate.get(pending.id).status == "pending"
        c.cookies.clear()
        form = c.get("/ui/signin")
        token = form.text.split('name="csrf" value="')[1].split('"')[0]
        wrong = c.post("/ui/signin", data={"key": "cpk_0000000000000000_nope", "csrf": token})
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.text


def test_a_quarantined_run_shows_as_such_on_the_subject_page(chromium: Any, site: Site) -> None:
    """A run failed as poison (here: its stored input is not JSON) reads `quarantined (code)`."""
    from sqlalchemy import update

    from copilot.db.tables import runs

    run, _ = site.rt.runner.trigger("account_health", "acct-002", tenant="acme")
    with site.rt.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run.id).values(inputs="{"))
    ended = site.rt.runner.advance(run.id)
    assert ended is not None and ended.error is not None, ended
    assert ended.error["code"] == "run.bad_input"
    app = sign_in(chromium, site, "acme-app")
    app.goto(site.url + "/ui/subjects/acct-002")
    assert app.get_by_text("quarantined (run.bad_input)").count() == 1
