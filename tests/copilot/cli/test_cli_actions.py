"""`copilot actions list|show|ack|retry|cancel` for operators, on the embedded database."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import cli, prepared
from tests.support.feed import opened
from tests.support.runtime import build_runtime

ENV = {"COPILOT_TENANT": "acme", "COPILOT_DELIVERY_MAX_ATTEMPTS": "1"}


def test_an_operator_lists_acks_retries_and_cancels_actions(tmp_path: Path) -> None:
    home = prepared(tmp_path)
    rt = build_runtime(f"sqlite:///{home}/copilot.db", home, woken=[], with_flows=False,
                       delivery_max_attempts=1)  # fmt: skip
    try:
        a, b, c = opened(rt, 3)
        claimed = rt.deliveries.claim("acme", "crm", only=c.id)[0]
    finally:
        rt.close()
    listed = json.loads(cli(home, "actions", "list", "--json", **ENV).stdout)
    assert [(d["id"], d["state"]) for d in listed] == [  # newest first
        (c.id, "claimed"), (b.id, "ready"), (a.id, "ready")
    ]  # fmt: skip
    # an action sent by hand is acked by the operator (claimed for them first)
    done = cli(home, "actions", "ack", str(a.id), "--as", "omar", "--detail", "ticket=T-9",
               "--json", **ENV)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["receipt"]["detail"] == {"ticket": "T-9"}
    # one a consumer holds is refused, with the code
    held = cli(home, "actions", "ack", str(c.id), "--as", "omar", **ENV)
    assert held.returncode == 1 and "delivery.claim_lost" in held.stderr
    # with the holder's claim it settles; a failure at the cap is dead, then retried
    failed = cli(home, "actions", "ack", str(c.id), "--as", "omar", "--claim",
                 claimed.claim or "", "--status", "failed", "--json", **ENV)  # fmt: skip
    assert json.loads(failed.stdout)["state"] == "dead", failed.stderr
    back = cli(home, "actions", "retry", str(c.id), "--as", "omar", "--json", **ENV)
    assert json.loads(back.stdout)["state"] == "ready"
    gone = cli(home, "actions", "cancel", str(b.id), "--as", "omar", "--reason", "duplicate", **ENV)
    assert gone.returncode == 0 and "cancelled" in gone.stdout
    again = cli(home, "actions", "cancel", str(a.id), "--as", "omar", "--reason", "x", **ENV)
    assert again.returncode == 1 and "delivery.conflict" in again.stderr
    missing = cli(home, "actions", "show", "9999", **ENV)
    assert missing.returncode == 1 and "delivery.not_found" in missing.stderr
    bad = cli(home, "actions", "ack", str(a.id), "--as", "o", "--status", "done", **ENV)
    assert bad.returncode == 2
    table = cli(home, "actions", "list", "--status", "delivered", **ENV).stdout
    assert "post_note" in table and "delivered" in table
