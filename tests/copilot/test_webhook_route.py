"""The webhook route through real workers to a receiver process that is SIGKILLed mid-delivery."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.webhook_receiver import ReceiverProcess

SECRET = "route-secret"
RUNS = 30


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [("pg_url", "redis")], indirect=True, ids=["pg-redis"])
def test_a_receiver_killed_mid_delivery_gets_every_action_and_acts_once_per_key(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Given post_note routed (routes file) to a receiver process that will hang after
    # committing its 5th effect, before answering
    receiver = ReceiverProcess(tmp_path / "receiver.db", SECRET)
    receiver.start(hang_on=5)
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"routes:\n  post_note: {{executor: webhook, url: '{receiver.url}', "
        "secret_env: NOTE_HOOK_SECRET, timeout: 5}\n"
    )
    cluster.env.update(COPILOT_ROUTES_PATH=str(routes), NOTE_HOOK_SECRET=SECRET)
    try:
        cluster.start(0)
        cluster.start(1)
        ids = [
            cluster.rt.runner.trigger("noting", f"acct-{i}", tenant="default")[0].id
            for i in range(RUNS)
        ]
        # When it is SIGKILLed while that delivery waits for its answer, and started again
        hung = Path(f"{receiver.db}.hung")
        deadline = time.monotonic() + 60
        while not hung.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hung.exists(), "the receiver never reached its 5th delivery"
        receiver.kill()
        time.sleep(1.0)  # down for a while: deliveries meanwhile fail and are retried
        receiver.start()
        assert wait_for(cluster, ids, {"completed"}, timeout=120) == Counter(completed=RUNS)
    finally:
        receiver.kill()
    # Then every approved action arrived, each key's effect exactly once
    keys = {f"approval:{r.id}" for run_id in ids for r in cluster.rt.gate.of_run(run_id, "")}
    assert len(keys) == RUNS
    effects = Counter(k for (k,) in receiver.query("SELECT key FROM effects"))
    assert effects == Counter(dict.fromkeys(keys, 1))
    # and the one whose answer was lost was delivered again (and deduplicated), all signed
    deliveries = Counter(k for (k,) in receiver.query("SELECT key FROM deliveries"))
    assert deliveries[hung.read_text()] >= 2
    assert receiver.query("SELECT count(*) FROM deliveries WHERE valid = 0") == [(0,)]
    for run_id in ids:
        (req,) = cluster.rt.gate.of_run(run_id, "")
        assert req.execution_status == "done"
