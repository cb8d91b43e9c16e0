"""The action feed over HTTP: claim, ack exactly once, stable error codes, roles, long-poll."""

from __future__ import annotations

import time

import pytest

from copilot.api.routes import actions
from tests.support.api import Api
from tests.support.feed import approved_run, events_of, opened


def test_an_approved_run_s_actions_are_claimed_from_the_feed_and_acked_once(api: Api) -> None:
    # Given a run whose two actions were approved and handed to the outbox
    run_id = approved_run(api.rt)
    app = api.auth("acme", "app")
    # When the app claims the feed
    page = api.client.get("/v1/actions", params={"status": "ready"}, headers=app).json()
    kinds = sorted(a["kind"] for a in page["items"])
    assert kinds == ["email_customer", "post_note"]
    assert all(
        a["state"] == "claimed" and a["claim"] and a["run_id"] == run_id for a in page["items"]
    )
    # nothing else is claimable while they are claimed
    again = api.client.get("/v1/actions", params={"status": "ready"}, headers=app).json()
    assert again["items"] == []
    # Then each ack settles it once; a repeat replays
    first = page["items"][0]
    body = {"claim": first["claim"], "status": "delivered", "detail": {"message_id": "m-1"}}
    done = api.client.post(f"/v1/actions/{first['id']}/ack", json=body, headers=app)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "delivered"
    assert done.json()["receipt"]["detail"] == {"message_id": "m-1"}
    replay = api.client.post(f"/v1/actions/{first['id']}/ack", json=body, headers=app)
    assert replay.status_code == 200 and replay.json()["state"] == "delivered"
    assert len([e for e in events_of(api.rt, "acme", "delivery.delivered")]) == 1
    # and an ack that would change it is a conflict
    other = {**body, "status": "failed"}
    clash = api.client.post(f"/v1/actions/{first['id']}/ack", json=other, headers=app)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "delivery.conflict"
    # the reviewer and the auditor see where it stands, never the claim token
    seen = api.client.get(f"/v1/actions/{first['id']}", headers=api.auth("acme", "auditor"))
    assert seen.json()["state"] == "delivered" and seen.json()["claim"] is None


def test_feed_errors_have_stable_codes(api: Api) -> None:
    app = api.auth("acme", "app")
    (d,) = opened(api.rt, 1)
    ack = {"claim": "0" * 32, "status": "delivered", "detail": {}}
    r = api.client.post("/v1/actions/999999/ack", json=ack, headers=app)
    assert r.status_code == 404 and r.json()["error"]["code"] == "delivery.not_found"
    r = api.client.post(f"/v1/actions/{d.id}/ack", json={**ack, "status": "done"}, headers=app)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    r = api.client.post(f"/v1/actions/{d.id}/ack", json=ack, headers=app)  # never claimed so
    assert r.status_code == 409 and r.json()["error"]["code"] == "delivery.claim_lost"
    r = api.client.get("/v1/actions", params={"statuz": "ready"}, headers=app)
    assert r.status_code == 422
    r = api.client.get("/v1/actions", params={"status": "gone"}, headers=app)
    assert r.status_code == 422
    for status in ("ready", "all"):  # a cursor past any id the database holds (was a 500)
        r = api.client.get("/v1/actions", params={"status": status, "cursor": 2**64}, headers=app)
        assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", r.text
    # another tenant's id is not found; a reviewer's key may not pull the feed
    other = api.client.get(f"/v1/actions/{d.id}", headers=api.auth("globex", "app"))
    assert other.status_code == 404
    r = api.client.get("/v1/actions", headers=api.auth("acme", "reviewer"))
    assert r.status_code == 403


def test_a_long_poll_waits_then_returns_empty(api: Api) -> None:
    started = time.monotonic()
    r = api.client.get("/v1/actions", params={"wait": 0.6}, headers=api.auth("acme", "app"))
    assert r.status_code == 200 and r.json()["items"] == []
    assert time.monotonic() - started >= 0.5


def test_any_valid_wait_is_accepted_and_held_no_longer_than_the_cap(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "MAX_WAIT", 0.4)  # the cap (20 s) made short
    for wait in (3600, 25.5):
        started = time.monotonic()
        r = api.client.get("/v1/actions", params={"wait": wait}, headers=api.auth("acme", "app"))
        held = time.monotonic() - started
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, r.text
        assert 0.35 <= held < 0.4 + 1.5, (wait, held)


def test_a_dead_action_is_retried_or_cancelled_by_a_reviewer(api: Api) -> None:
    app, reviewer = api.auth("acme", "app"), api.auth("acme", "reviewer")
    api.rt.deliveries.policy = type(api.rt.deliveries.policy)(max_attempts=1)
    a, b = opened(api.rt, 2)
    for d in api.client.get("/v1/actions", headers=app).json()["items"]:
        body = {"claim": d["claim"], "status": "failed", "detail": {"error": "smtp 550"}}
        r = api.client.post(f"/v1/actions/{d['id']}/ack", json=body, headers=app)
        assert r.json()["state"] == "dead" and r.json()["last_error"] == "smtp 550"
    # an app may not retry; a reviewer may
    assert api.client.post(f"/v1/actions/{a.id}/retry", headers=app).status_code == 403
    r = api.client.post(f"/v1/actions/{a.id}/retry", headers=reviewer)
    assert r.status_code == 200 and r.json()["state"] == "ready" and r.json()["attempts"] == 0
    r = api.client.post(
        f"/v1/actions/{b.id}/cancel", json={"reason": "sent by hand"}, headers=reviewer
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = api.client.post(f"/v1/actions/{b.id}/retry", headers=reviewer)
    assert r.status_code == 409 and r.json()["error"]["code"] == "delivery.conflict"
    # the retried one is in the feed again; the cancelled one is not
    ids = [d["id"] for d in api.client.get("/v1/actions", headers=app).json()["items"]]
    assert ids == [a.id]
    dead = api.client.get("/v1/actions", params={"status": "cancelled"}, headers=app).json()
    assert [d["id"] for d in dead["items"]] == [b.id]


def test_a_batch_of_acks_settles_each_on_its_own_in_one_call(api: Api) -> None:
    app = api.auth("acme", "app")
    opened(api.rt, 3)
    page = api.client.get("/v1/actions", params={"status": "ready", "limit": 2}, headers=app)
    first, second = page.json()["items"]
    acks = [{"id": first["id"], "claim": first["claim"], "status": "delivered", "detail": {"m": 1}},
            {"id": second["id"], "claim": "0" * 32, "status": "delivered"},
            {"id": 999999, "claim": "0" * 32, "status": "failed"}]  # fmt: skip
    r = api.client.post("/v1/actions/ack", json={"acks": acks}, headers=app)
    assert r.status_code == 200, r.text
    one, two, three = r.json()["results"]
    assert one["id"] == first["id"] and one["error"] is None
    assert one["action"]["state"] == "delivered" and one["action"]["receipt"]["detail"] == {"m": 1}
    assert (two["action"], two["error"]["code"]) == (None, "delivery.claim_lost")
    assert (three["action"], three["error"]["code"]) == (None, "delivery.not_found")
    assert api.rt.deliveries.get(second["id"]).state == "claimed"  # a refused ack wrote nothing
    # the batch's shape is checked before anything is settled
    for bad in ({"acks": []}, {"acks": [acks[0], acks[0]]}, {"acks": [acks[0]] * 101},
                {"acks": [{**acks[0], "status": "done"}]}):  # fmt: skip
        r = api.client.post("/v1/actions/ack", json=bad, headers=app)
        assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", bad
    assert api.rt.deliveries.get(first["id"]).state == "delivered"
