"""End to end with real processes: uvicorn, Celery workers on Redis, PostgreSQL.

Trigger over HTTP → a worker runs the workflow to its proposals → approve over HTTP →
the woken worker executes the actions once → the trail is read, verified and exported
over HTTP, and the bundle verifies offline.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from audit import Actor, verify_bundle
from copilot.client import Client
from copilot.db.tables import outbox
from copilot.engine.runs import RunState
from tests.support.cluster import Cluster
from tests.support.live import LiveServer


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [("pg_url", "redis")], indirect=True)
def test_http_trigger_worker_http_approve_executed_and_the_trail_verified_over_http(
    cluster: Cluster, tmp_path: Path
) -> None:
    rt = cluster.rt
    rt.signing_trail.checkpoint("acme")  # the key this deployment signs with (beat host, API)
    tokens = {
        role: rt.keys.create(tenant="acme", roles=[role], name=name, actor=Actor.system("t"))[1]
        for role, name in (("app", "crm"), ("reviewer", "maya"), ("auditor", "audra"))
    }
    cluster.start(0)
    cluster.start(1)
    server = LiveServer(cluster.env, tmp_path / "api.log").start()
    try:
        with (
            Client(server.url, tokens["app"]) as app,
            Client(server.url, tokens["reviewer"]) as reviewer,
            Client(server.url, tokens["auditor"]) as auditor,
        ):
            ids = [app.trigger("proposing", f"acct-{i}").id for i in range(4)]
            for run_id in ids:
                assert app.wait(run_id, timeout=60).state == RunState.WAITING
            pending = list(reviewer.iter_approvals())
            # Under the default policy each run's post_note (low risk, internal) was
            # approved by policy; its email_customer waits for a person.
            assert len(pending) == 4 and {p.run_id for p in pending} == set(ids)
            for p in pending:
                if p.run_id == ids[0]:
                    reviewer.reject(p.id, p.payload_hash, "not this week")
                else:
                    reviewer.approve(p.id, p.payload_hash)
            # No sweep here: the decisions' wake-ups, sent by the API to Redis, move the runs.
            finished = [app.wait(run_id, timeout=60) for run_id in ids]
            assert Counter(r.state for r in finished) == Counter({RunState.COMPLETED: 4})

            with rt.engine.connect() as conn:
                sent = Counter(conn.execute(select(outbox.c.run_id, outbox.c.kind)).all())
            assert sent == Counter(
                {(r, "post_note"): 1 for r in ids} | {(r, "email_customer"): 1 for r in ids[1:]}
            )  # approved actions executed exactly once; the rejected one never

            events = list(auditor.iter_events(run_id=ids[1]))
            kinds = [e.event_type for e in events]
            assert kinds[0] == "run.created" and kinds[-1] == "run.completed"
            assert kinds.count("approval.executed") == 2
            assert [e.actor.id for e in events if e.event_type == "approval.vote"] == ["maya"]
            verdict = auditor.verify()
            assert verdict.ok, verdict.line
            bundle = auditor.export(tmp_path / "export")
            offline = verify_bundle(bundle)
            assert [(v.stream, v.ok, v.unsigned) for v in offline] == [("acme", True, 0)]
    finally:
        server.stop()
