"""Real Celery workers, real brokers, real databases: crashes and lost messages lose no run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from audit import Trail
from copilot.db.tables import outbox, runs
from copilot.engine.runs import RunState
from copilot.runtime import Runtime
from copilot.settings import Settings
from tests.conftest import unavailable
from tests.support import flows

ROOT = Path(__file__).resolve().parents[2]
# A database of its own: the flush test empties it. COPILOT_TEST_REDIS_DB picks another
# (say, for two checkouts testing at once on one Redis).
REDIS_DB = int(os.environ.get("COPILOT_TEST_REDIS_DB", "7"))


def redis_url() -> str:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable("Redis at 127.0.0.1:6379", exc)
    return f"redis://127.0.0.1:6379/{REDIS_DB}"


class Cluster:
    """Worker processes plus a runtime in the test process that triggers and sweeps."""

    def __init__(self, db_url: str, broker: str, home: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
            "COPILOT_DATABASE_URL": db_url,
            "COPILOT_BROKER_URL": broker,
            "COPILOT_HOME": str(home),
            "COPILOT_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
            "COPILOT_WORKFLOW_MODULES": "tests.support.flows",
            "COPILOT_LEASE_SECONDS": "4",
            "COPILOT_SWEEP_GRACE": "3",
            "COPILOT_BROKER_VISIBILITY_TIMEOUT": "6",
            "COPILOT_CHECKPOINT_EVERY": "0",
        }
        self.home = home
        settings = Settings(
            **{
                k.removeprefix("COPILOT_").lower(): v
                for k, v in self.env.items()
                if k.startswith("COPILOT_")
            }
        )
        self.rt = Runtime(settings)
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, n: int) -> None:
        with (self.logs / f"worker-{n}.log").open("ab") as log:
            self.workers[n] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "copilot",
                    "worker",
                    "--concurrency",
                    "1",
                    "--no-beat",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill(self, n: int) -> None:
        os.killpg(self.workers[n].pid, signal.SIGKILL)
        self.workers[n].wait()

    def stop(self) -> None:
        for p in self.workers.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.workers.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def states(self, ids: list[str]) -> Counter[str]:
        with self.rt.engine.connect() as conn:
            rows = conn.execute(select(runs.c.state).where(runs.c.id.in_(ids)))
            return Counter(rows.scalars())

    def wait_until_settled(
        self, ids: list[str], timeout: float, on_tick: object = None
    ) -> Counter[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.rt.sweeper.sweep()  # what beat does every few seconds
            states = self.states(ids)
            if states[RunState.COMPLETED.value] == len(ids):
                return states
            if callable(on_tick):
                on_tick()
            time.sleep(0.5)
        return self.states(ids)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    db_url, broker = request.param
    c = Cluster(
        request.getfixturevalue(db_url),
        broker if broker.startswith("sqla") else redis_url(),
        tmp_path,
    )
    if broker.startswith("sqla"):
        c.env["COPILOT_BROKER_URL"] = f"sqla+sqlite:///{tmp_path}/broker.db"
        c.rt.settings.broker_url = c.env["COPILOT_BROKER_URL"]
    from copilot.db.engines import upgrade

    upgrade(c.rt.engine)
    flows.create_tables(c.rt.engine)
    yield c
    c.stop()
    c.rt.close()


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
@pytest.mark.parametrize("cluster", [("pg_url", "redis")], indirect=True)
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
