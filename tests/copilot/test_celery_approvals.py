"""End to end through real Celery workers on Redis and PostgreSQL: propose, decide, execute once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from audit import Trail
from copilot.db.tables import outbox
from copilot.engine.runs import RunState
from tests.support.cluster import Cluster, wait_for
from tests.support.gate import REVIEWERS
from tests.support.services import RABBITMQ

POLICY = """
version: e2e@1
rules:
  - id: low-internal
    when: {risk_at_most: low, reaches_customer: false}
    then: {action: auto_approve}
"""


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [("pg_url", "redis"), RABBITMQ], indirect=True)
def test_trigger_wait_decide_execute_once_and_verify(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    cluster.env["COPILOT_POLICY_PATH"] = str(tmp_path / "policy.yaml")
    cluster.rt.settings.policy_path = tmp_path / "policy.yaml"
    cluster.start(0)
    ids = [
        cluster.rt.runner.trigger(
            "proposing", f"acct-{i}", tenant="default", triggered_by="app:crm"
        )[0].id
        for i in range(6)
    ]
    assert wait_for(cluster, ids, {"waiting"}) == Counter({"waiting": 6})
    gate = cluster.rt.gate
    queue, _ = gate.queue("default", limit=100)
    assert len(queue) == 6
    by_run = {r.run_id: r for r in queue}
    # Approve two and reject two while the worker runs; decide two more with every worker
    # down, then start one and kill it at once: the decisions are durable, the resume too.
    for run_id in ids[:2]:
        r = by_run[run_id]
        gate.decide(
            r.id, reviewer="maya", roles=REVIEWERS, decision="approve", payload_hash=r.payload_hash
        )
        cluster.rt.enqueue(run_id)
    for run_id in ids[2:4]:
        r = by_run[run_id]
        gate.decide(
            r.id,
            reviewer="maya",
            roles=REVIEWERS,
            decision="reject",
            payload_hash=r.payload_hash,
            reason="not now",
        )
        cluster.rt.enqueue(run_id)
    cluster.kill(0)
    for run_id in ids[4:]:
        r = by_run[run_id]
        gate.decide(
            r.id, reviewer="li", roles=REVIEWERS, decision="approve", payload_hash=r.payload_hash
        )
        cluster.rt.enqueue(run_id)
    cluster.start(0)
    time.sleep(1.0)
    cluster.kill(0)
    cluster.start(0)
    assert wait_for(cluster, ids, {"completed"}, timeout=200) == Counter({"completed": 6})
    with cluster.rt.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.run_id, outbox.c.kind)).all()
    sent = Counter(run_id for run_id, kind in rows if kind == "email_customer")
    notes = Counter(run_id for run_id, kind in rows if kind == "post_note")
    assert sent == Counter({ids[0]: 1, ids[1]: 1, ids[4]: 1, ids[5]: 1})  # approved ones, once each
    assert notes == Counter({run_id: 1 for run_id in ids})
    for run_id in ids:
        assert cluster.rt.runs.get(run_id).state == RunState.COMPLETED
    cluster.rt.audit.settle_all()
    assert Trail(cluster.rt.audit).verify("default").ok
