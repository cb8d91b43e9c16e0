"""The `celery` route hands each approved action to a second Celery app's worker, once.

Copilot's workers run on Redis (its own database); the app's worker on another Redis
database consumes its own queue and records each action in PostgreSQL with the
idempotency key unique. One copilot worker is SIGKILLed while actions are in flight.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from copilot.db.tables import receipts
from copilot.engine.executors.celery import task_id
from tests.support import crm_app
from tests.support.cluster import ROOT, Cluster, wait_for
from tests.support.services import APP_REDIS_DB, PG_DSN, RABBITMQ, redis_url

RUNS = 200


def sent(cluster: Cluster) -> int:
    with cluster.rt.engine.connect() as conn:
        query = select(func.count()).select_from(receipts).where(receipts.c.executor == "celery")
        return int(conn.execute(query).scalar_one())


def recorded(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM crm_actions").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "cluster", [pytest.param(("pg_url", "redis"), id="pg-redis"), RABBITMQ], indirect=True
)
def test_the_celery_route_hands_each_action_to_the_app_once_despite_a_worker_kill(
    cluster: Cluster, tmp_path: Path, pg_schema: str
) -> None:
    # Given the app's own Celery worker on its own broker and queue, recording into its table
    dsn = f"{PG_DSN} options=-csearch_path={pg_schema}"
    with psycopg.connect(dsn) as conn:
        conn.execute(crm_app.TABLES)
    broker, queue = redis_url(APP_REDIS_DB), f"crm-{uuid.uuid4().hex[:8]}"
    app_env = {**cluster.env, "CRM_BROKER_URL": broker, "CRM_DATABASE": dsn}
    argv = [sys.executable, "-m", "celery", "-A", "tests.support.crm_app", "worker", "-Q",
            queue, "--pool", "solo", "--loglevel", "WARNING", "--without-heartbeat",
            "--without-gossip", "--without-mingle"]  # fmt: skip
    with (tmp_path / "crm-worker.log").open("ab") as log:
        app_worker = subprocess.Popen(argv, cwd=ROOT, env=app_env, stdout=log, stderr=log)
    # and post_note routed to its task by the routes file
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  post_note: {executor: celery, task: crm.record_action, "
        f"queue: {queue}, broker_env: CRM_BROKER_URL}}\n"
    )
    cluster.env.update(COPILOT_ROUTES_PATH=str(routes), CRM_BROKER_URL=broker)
    try:
        cluster.start(0)
        cluster.start(1)
        ids = [
            cluster.rt.runner.trigger("noting", f"acct-{i}", tenant="default")[0].id
            for i in range(RUNS)
        ]
        # When one copilot worker is SIGKILLed while actions are being handed over
        deadline = time.monotonic() + 60
        while sent(cluster) < RUNS // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        cluster.kill(0)
        cluster.start(0)
        assert wait_for(cluster, ids, {"completed"}, timeout=120) == Counter(completed=RUNS)
        deadline = time.monotonic() + 60
        while recorded(dsn) < RUNS and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        app_worker.terminate()
        app_worker.wait(timeout=20)
    # Then the app recorded every approved action exactly once
    keys = {f"approval:{r.id}" for run_id in ids for r in cluster.rt.gate.of_run(run_id, "")}
    assert len(keys) == RUNS
    with psycopg.connect(dsn) as conn:
        made = Counter(k for (k,) in conn.execute("SELECT idempotency_key FROM crm_actions"))
        received = list(conn.execute("SELECT idempotency_key, task_id FROM crm_received"))
        subjects = {s for (s,) in conn.execute("SELECT subject_id FROM crm_actions")}
    assert made == Counter(dict.fromkeys(keys, 1))
    assert subjects == {f"acct-{i}" for i in range(RUNS)}
    # and every message for an action carried its one task id (a resend is recognisable)
    assert all(tid == task_id(key) for key, tid in received)
    assert {key for key, _ in received} == keys
    print(f"messages: {len(received)} for {RUNS} actions")
