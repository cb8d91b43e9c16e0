"""An executor from outside the repository, installed as a distribution, run by real workers."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from copilot.db.tables import outbox
from tests.support import plugin_dist
from tests.support.cluster import Cluster, wait_for
from tests.support.gate import REVIEWERS


@pytest.mark.slow
@pytest.mark.parametrize(
    "cluster", [("sqlite_url", "sqla"), ("pg_url", "sqla")], indirect=True, ids=["sqlite", "pg"]
)
def test_an_external_executor_receives_each_approved_action_of_its_kind_exactly_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Given a distribution outside the repository (a module plus its dist-info declaring
    # `acme_file` in `copilot.executors`) on the workers' path, and email_customer routed to it
    site = plugin_dist.write_distribution(tmp_path / "site")
    cluster.env["PYTHONPATH"] = os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    cluster.env["COPILOT_ACTION_EXECUTORS"] = f"email_customer={plugin_dist.NAME}"
    cluster.start(0)
    cluster.start(1)
    ids = [
        cluster.rt.runner.trigger(
            "proposing", f"acct-{i}", tenant="default", triggered_by="app:crm"
        )[0].id
        for i in range(6)
    ]
    assert wait_for(cluster, ids, {"waiting"}) == Counter({"waiting": 6})
    # When a reviewer approves four emails and rejects two
    gate = cluster.rt.gate
    queue, _ = gate.queue("default", limit=100)
    by_run = {r.run_id: r for r in queue}
    approved = [by_run[run_id] for run_id in ids[:4]]
    for req in queue:
        decision = "approve" if req in approved else "reject"
        gate.decide(
            req.id,
            reviewer="maya",
            roles=REVIEWERS,
            decision=decision,
            payload_hash=req.payload_hash,
            reason=None if decision == "approve" else "not now",
        )
        cluster.rt.enqueue(str(req.run_id))
    assert wait_for(cluster, ids, {"completed"}, timeout=200) == Counter({"completed": 6})
    # Then the external executor, inside a worker, was handed each approved email once
    received = plugin_dist.received(cluster.home)
    assert Counter(a["idempotency_key"] for a in received) == Counter(
        {f"approval:{r.id}": 1 for r in approved}
    )
    assert {a["kind"] for a in received} == {"email_customer"}
    assert {a["run_id"] for a in received} == set(ids[:4])
    assert os.getpid() not in {a["pid"] for a in received}
    # and each approval is closed as executed; the rejected ones never were
    for req in queue:
        expected = "done" if req in approved else None
        assert gate.get(req.id).execution_status == expected, req.id
    # while the unrouted kind still went to the outbox, once per run
    with cluster.rt.engine.connect() as conn:
        kinds = Counter(conn.execute(select(outbox.c.kind)).scalars())
    assert kinds == Counter({"post_note": 6})
