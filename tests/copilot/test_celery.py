"""Real Celery workers, real brokers, real databases: crashes and lost messages lose no run."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections import Counter

import pytest
from sqlalchemy import Engine, func, select

from audit import Trail
from copilot.db.tables import outbox
from copilot.engine.runs import RunState
from copilot.runtime import Runtime
from tests.support import flows
from tests.support.cluster import Cluster
from tests.support.services import RABBITMQ, REDIS_DB


def check_exactly_once(engine: Engine, rt: Runtime, ids: list[str]) -> None:
    with engine.connect() as conn:
        per_step = conn.execute(
            select(flows.flow_effects.c.run_id, flows.flow_effects.c.step, func.count())
            .where(flows.flow_effects.c.run_id.in_(ids))
            .group_by(flows.flow_effects.c.run_id, flows.flow_effects.c.step)
        ).all()
        actions = conn.execute(
            select(outbox.c.run_id, func.count()).group_by(outbox.c.run_id)
        ).all()
    assert len(per_step) == 5 * len(ids), "every step of every run committed"
    assert {n for *_, n in per_step} == {1}, "no step committed twice"
    assert len(actions) == len(ids) and {n for _, n in actions} == {1}, "no action executed twice"
    rt.audit.settle_all()
    verdict = Trail(rt.audit).verify("default")
    assert verdict.ok, verdict.line()


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [("pg_url", "redis"), RABBITMQ], indirect=True)
def test_200_runs_survive_workers_killed_repeatedly_on_redis_and_postgresql(
    cluster: Cluster,
) -> None:
    cluster.start(0)
    cluster.start(1)
    ids = [
        cluster.rt.runner.trigger(
            "five_steps", f"acct-{i}", tenant="default", inputs={"delay_ms": 15}
        )[0].id
        for i in range(200)
    ]
    rng = random.Random(7)
    kills = {"n": 0, "next": time.monotonic() + 2}

    def chaos() -> None:
        if kills["n"] < 8 and time.monotonic() > kills["next"]:
            victim = rng.choice([0, 1])
            cluster.kill(victim)
            cluster.start(victim)
            kills["n"] += 1
            kills["next"] = time.monotonic() + rng.uniform(1.0, 2.5)

    states = cluster.wait_until_settled(ids, timeout=400, on_tick=chaos)
    assert states == Counter({"completed": 200}), states
    assert kills["n"] >= 4
    check_exactly_once(cluster.rt.engine, cluster.rt, ids)


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [("sqlite_url", "sqla")], indirect=True)
def test_runs_survive_a_killed_worker_on_the_embedded_sqlite_broker(cluster: Cluster) -> None:
    cluster.start(0)
    cluster.start(1)
    ids = [
        cluster.rt.runner.trigger(
            "five_steps", f"acct-{i}", tenant="default", inputs={"delay_ms": 20}
        )[0].id
        for i in range(30)
    ]
    killed = {"done": False, "at": time.monotonic() + 4}

    def chaos() -> None:
        if not killed["done"] and time.monotonic() > killed["at"]:
            cluster.kill(0)
            cluster.start(0)
            killed["done"] = True

    states = cluster.wait_until_settled(ids, timeout=300, on_tick=chaos)
    assert states == Counter({"completed": 30}), states
    check_exactly_once(cluster.rt.engine, cluster.rt, ids)


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [("pg_url", "redis")], indirect=True)
def test_flushing_redis_mid_run_loses_nothing_the_sweeper_recovers_it(cluster: Cluster) -> None:
    import redis

    ids = [
        cluster.rt.runner.trigger(
            "five_steps", f"acct-{i}", tenant="default", inputs={"delay_ms": 10}
        )[0].id
        for i in range(40)
    ]
    cluster.start(0)
    time.sleep(3)
    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()  # every queued message gone
    assert cluster.states(ids)[RunState.COMPLETED.value] < 40, "the flush came too late to matter"
    states = cluster.wait_until_settled(ids, timeout=200)
    assert states == Counter({"completed": 40}), states
    check_exactly_once(cluster.rt.engine, cluster.rt, ids)


@pytest.mark.hosts
@pytest.mark.parametrize("cluster", [("pg_url", "rabbitmq")], indirect=True)
def test_on_rabbitmq_the_queue_is_a_quorum_queue(cluster: Cluster) -> None:
    """Replicated by the cluster, with publisher confirms: the queue the workers consume."""
    cluster.start(0)
    ids = [cluster.rt.runner.trigger("five_steps", f"acct-{i}", tenant="default")[0].id
           for i in range(5)]  # fmt: skip
    assert cluster.wait_until_settled(ids, timeout=120) == Counter({"completed": 5})
    vhost = cluster.env["COPILOT_BROKER_URL"].rsplit("/", 1)[1]
    listed = subprocess.run(
        [shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl", "-q", "list_queues", "-p",
         vhost, "name", "type", "durable", "--no-table-headers"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    queue = cluster.env["COPILOT_QUEUE"]
    assert listed[listed.index(queue) : listed.index(queue) + 3] == [queue, "quorum", "true"]
