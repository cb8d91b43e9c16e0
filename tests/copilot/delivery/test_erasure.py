"""Erasing a subject cancels its undelivered actions and forgets every delivery's payload."""

from __future__ import annotations

from pathlib import Path

from audit import Actor
from copilot.delivery import State
from copilot.erasure import erase_subject
from tests.support.feed import opened
from tests.support.runtime import build_runtime


def test_an_erased_subject_s_actions_never_reach_the_app(sqlite_url: str, tmp_path: Path) -> None:
    rt = build_runtime(sqlite_url, tmp_path, woken=[])
    try:
        made = opened(rt, 6)  # subjects acct-0, acct-1, acct-2, twice each
        (first,) = rt.deliveries.claim("acme", "crm", only=made[0].id)
        rt.deliveries.ack("acme", first.id, first.claim or "", "delivered", {"to": "ana@x"})
        counts = erase_subject(rt, "acme", "acct-0", actor=Actor.human("dpo"))
        assert counts["deliveries"] == 2 and counts["deliveries_cancelled"] == 1
        mine = [rt.deliveries.get(d.id) for d in made if d.subject_id == "acct-0"]
        assert [d.state for d in mine] == [State.DELIVERED, State.CANCELLED]
        assert all(d.payload == {"erased": True} and d.receipt is None for d in mine)
        claimable = rt.deliveries.claim("acme", "crm", limit=10)
        assert {d.subject_id for d in claimable} == {"acct-1", "acct-2"}
    finally:
        rt.close()
