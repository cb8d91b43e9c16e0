"""Liveness under faults, end to end: two `copilot worker` processes on a PostgreSQL and a
redis-server of the test's own (started and stopped by PID), the test process triggering
and sweeping. Frozen workers (SIGSTOP) inside a checkpoint transaction and holding the
audit chain lock, a step that never returns, a read-only episode, a revoked grant, and a
broker that is away: the cluster keeps completing runs, nothing is lost or doubled.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from copilot.db.tables import outbox
from copilot.engine.runs import RunState
from copilot.runtime import Runtime
from copilot.settings import Settings
from tests.support.cluster import Cluster, wait_for
from tests.support.faults import PgCluster, RedisServer, own_pg, own_redis
from tests.support.flows import flow_effects

__all__ = ["own_pg", "own_redis"]  # fixtures

DONE = {RunState.COMPLETED.value}
LEASE = 2.0
# The bounds under test, small so a freeze of three leases outlasts them.
BOUNDS = {
    "COPILOT_WORKFLOW_MODULES": "tests.support.flows,tests.support.fault_flows",
    "COPILOT_LEASE_SECONDS": str(LEASE),
    "COPILOT_SWEEP_GRACE": "1",
    "COPILOT_DB_LOCK_TIMEOUT": "1",
    "COPILOT_DB_IDLE_IN_TRANSACTION_TIMEOUT": "6",
    "COPILOT_DB_STATEMENT_TIMEOUT": "30",
    "COPILOT_STEP_TIMEOUTS_MAX": "2",
    "COPILOT_AUDIT_SETTLE_WAIT": "2",
}


@pytest.fixture
def own_db(own_pg: PgCluster) -> Iterator[tuple[str, str]]:
    """(name, URL) of a fresh database on the tests' own server, owned by the role `app`
    (not a superuser: its grants can be revoked)."""
    name = "t_" + uuid.uuid4().hex[:10]
    own_pg.sql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN "
        "CREATE ROLE app LOGIN; END IF; END $$"
    )
    own_pg.sql(f"CREATE DATABASE {name} OWNER app")
    yield name, f"postgresql+psycopg://app@127.0.0.1:{own_pg.port}/{name}"
    own_pg.sql(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def fault_cluster(
    own_db: tuple[str, str], own_redis: RedisServer, tmp_path: Path
) -> Iterator[Cluster]:
    """Two workers (one process each) on the tests' own PostgreSQL and Redis."""
    c = Cluster(own_db[1], own_redis.url, tmp_path, env=BOUNDS)
    c.start(1)
    c.start(2)
    yield c
    c.stop()
    c.rt.close()


def _trigger(c: Cluster, workflow: str, n: int, **inputs: Any) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [
        c.rt.runner.trigger(workflow, f"acct-{tag}-{i}", tenant="acme", inputs=inputs)[0].id
        for i in range(n)
    ]


def _no_step_twice(c: Cluster, ids: list[str]) -> None:
    """Every five_steps run wrote each step's effect once and the outbox one row."""
    with c.rt.engine.connect() as conn:
        effects = conn.execute(
            select(flow_effects.c.run_id, func.count()).where(flow_effects.c.run_id.in_(ids))
            .group_by(flow_effects.c.run_id)
        ).all()  # fmt: skip
        notes = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.run_id.in_(ids))
        ).scalar_one()
    assert sorted(n for _, n in effects) == [5] * len(ids)
    assert notes == len(ids)


def _wait_pid(token: Path, timeout: float = 30) -> int:
    pid_file = Path(str(token) + ".pid")
    deadline = time.monotonic() + timeout
    while not pid_file.exists():
        assert time.monotonic() < deadline, "no worker froze"
        time.sleep(0.05)
    time.sleep(0.05)
    return int(pid_file.read_text())


@pytest.mark.parametrize("mode", ["checkpoint", "chain"])
def test_a_worker_frozen_in_a_checkpoint_or_holding_the_chain_lock_stalls_nobody(
    fault_cluster: Cluster, tmp_path: Path, mode: str
) -> None:
    """Given a worker SIGSTOPped inside a checkpoint transaction (holding the run's row lock,
    and in `chain` mode the stream's chain lock too) for three leases under steady load, the
    other worker completes runs every second of the freeze, verification answers within
    seconds, and once it resumes every run completes with no step done twice."""
    c = fault_cluster
    token = tmp_path / "freeze.token"
    token.write_text("")
    frozen = _trigger(c, "freezing", 1, token=str(token), mode=mode)
    load = _trigger(c, "five_steps", 20)  # steady load through the freeze
    pid = _wait_pid(token)  # the server ends the frozen session after 6 s
    began = time.monotonic()
    try:
        per_second: list[float] = []
        last, at = c.states(load)[RunState.COMPLETED.value], time.monotonic()
        verdict, verify_took = None, 0.0
        while time.monotonic() - began < 3 * LEASE:
            time.sleep(1.0)
            c.rt.sweeper.sweep()  # what beat does (its settle gives up on the frozen lock)
            done, now = c.states(load)[RunState.COMPLETED.value], time.monotonic()
            per_second.append(round((done - last) / (now - at), 1))
            last, at = done, now
            if verdict is None:  # by now the others have queued events behind the lock
                t = time.monotonic()
                verdict = c.rt.trail.verify("acme")
                verify_took = time.monotonic() - t
                assert verdict.ok, verdict.line()
                assert mode != "chain" or verdict.queued > 0, verdict.line()
            if len(load) - done < 15:
                load += _trigger(c, "five_steps", 20)  # keep the load steady
    finally:
        os.kill(pid, signal.SIGCONT)
    print(f"\n{mode}: completions per second during the freeze: {per_second}; "
          f"verify answered in {verify_took:.2f} s ({verdict.line()})")  # fmt: skip
    # The healthy worker never stalls longer than one lock_timeout (1 s here) on the frozen
    # run's row lock: no two seconds in a row without a completion.
    assert sum(per_second) > 0, per_second
    assert not any(a == b == 0 for a, b in itertools.pairwise(per_second))
    assert verify_took < 5.0
    states = wait_for(c, frozen + load, DONE, timeout=90)
    assert states == Counter({RunState.COMPLETED.value: len(frozen + load)})
    _no_step_twice(c, load)
    c.rt.audit.settle("acme")
    verdict = c.rt.trail.verify("acme")
    assert verdict.ok and verdict.queued == 0, verdict.line()


def test_a_step_that_sleeps_forever_ends_step_timeout_while_thirty_other_runs_complete(
    fault_cluster: Cluster,
) -> None:
    """Given a run whose step never returns (a 1 s workflow limit, two timeouts allowed),
    it fails `run.step_timeout` within the bound (2 x 1 s + a 1 s backoff + queueing) and
    30 other runs complete meanwhile."""
    c = fault_cluster
    began = time.monotonic()
    hung = _trigger(c, "hanging", 1)
    others = _trigger(c, "five_steps", 30)
    states = wait_for(c, hung, {RunState.FAILED.value}, timeout=60)
    took = time.monotonic() - began
    assert states == Counter({RunState.FAILED.value: 1})
    run = c.rt.runs.get(hung[0])
    assert run.error is not None and run.error["code"] == "run.step_timeout"
    print(f"\nthe hung run failed run.step_timeout after {took:.1f} s")
    assert took < 30
    assert wait_for(c, others, DONE, timeout=90) == Counter({RunState.COMPLETED.value: 30})
    _no_step_twice(c, others)


def _settle_quietly(c: Cluster, ids: list[str], within: float) -> tuple[Counter[str], float]:
    """Sweep (a sweep may fail while the database refuses writes) until every run completed."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        try:
            c.rt.sweeper.sweep()
            states = c.states(ids)
        except Exception:  # the database is still refusing: the sweeper's next pass retries
            states = Counter()
        if states[RunState.COMPLETED.value] == len(ids):
            return states, time.monotonic() - began
        time.sleep(0.5)
    return c.states(ids), time.monotonic() - began


def test_after_a_read_only_episode_and_a_revoked_grant_runs_resume_on_their_own(
    fault_cluster: Cluster, own_db: tuple[str, str], own_pg: PgCluster
) -> None:
    """Given a 10 s episode in which every new session is read-only (existing ones ended, as in
    a failover that demotes the primary) and then a 10 s revoke of INSERT on the outbox, the
    runs caught in each resume on their own within seconds after, and none fails: the pools
    discard the sessions left read-only, and both faults are retried as transient."""
    c, name = fault_cluster, own_db[0]
    warm = _trigger(c, "five_steps", 6)
    assert wait_for(c, warm, DONE, timeout=60) == Counter({RunState.COMPLETED.value: 6})
    # (statement, database) pairs: ALTER DATABASE from another, or it would be read-only too
    for begin, end in (
        (
            [(f"ALTER DATABASE {name} SET default_transaction_read_only = on", "postgres"),
             ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              f"WHERE datname = '{name}' AND pid <> pg_backend_pid()", "postgres")],
            [(f"ALTER DATABASE {name} RESET default_transaction_read_only", "postgres")],
        ),
        ([("REVOKE INSERT ON outbox FROM app", name)], [("GRANT INSERT ON outbox TO app", name)]),
    ):  # fmt: skip
        caught = _trigger(c, "five_steps", 10)
        for statement, db in begin:
            own_pg.sql(statement, db=db)
        _settle_quietly(c, caught, within=10.0)  # the episode: sweeps and workers keep failing
        for statement, db in end:
            own_pg.sql(statement, db=db)
        states, took = _settle_quietly(c, caught, within=30.0)
        print(
            f"\n{begin[0][0].split()[0]} episode: {len(caught)} runs completed {took:.1f} s after"
        )
        assert states == Counter({RunState.COMPLETED.value: len(caught)}), states
        _no_step_twice(c, caught)


def test_a_broker_away_for_ten_seconds_blocks_no_trigger_and_its_backlog_drains_at_once(
    fault_cluster: Cluster, own_redis: RedisServer, tmp_path: Path
) -> None:
    """Given Redis SIGKILLed for 10 s, each trigger through a server's runtime returns in under
    50 ms (its wake-up leaves from a background thread), the sweeper piles up nothing, and
    once Redis is back the first waiting run completes within 2 s, with at most two wake-ups
    per waiting run sent."""
    c = fault_cluster
    settings = {k.removeprefix("COPILOT_").lower(): v for k, v in c.env.items()
                if k.startswith("COPILOT_")}  # fmt: skip
    api = Runtime(Settings(**{**settings, "home": tmp_path / "api"}), tolerate_broker_errors=True)
    api.prepare()
    try:
        warm = [
            api.runner.trigger("five_steps", f"warm-{i}", tenant="acme")[0].id for i in range(2)
        ]
        assert wait_for(c, warm, DONE, timeout=60) == Counter({RunState.COMPLETED.value: 2})
        own_redis.kill()
        took, waiting = [], []
        began = time.monotonic()
        while time.monotonic() - began < 10.0:
            t = time.monotonic()
            waiting.append(
                api.runner.trigger("five_steps", f"acct-{len(waiting)}", tenant="acme")[0].id
            )
            took.append(time.monotonic() - t)
            api.sweeper.sweep()  # what beat would do: wake-ups queue up in the sender, per run
            time.sleep(0.5)
        assert api.sender.backlog <= len(waiting)
        own_redis.start()
        back = time.monotonic()
        first = None
        while first is None and time.monotonic() - back < 30:
            if c.states(waiting)[RunState.COMPLETED.value]:
                first = time.monotonic() - back
            time.sleep(0.05)
        sent = own_redis.messages(c.env["COPILOT_QUEUE"])
        took.sort()
        print(f"\ntriggers during the outage: median {took[len(took) // 2] * 1000:.1f} ms, max "
              f"{took[-1] * 1000:.1f} ms (target < 50); the first run completed {first or -1:.2f} s "
              f"after the broker returned (target < 2); {sent} messages held for "
              f"{len(waiting)} waiting runs")  # fmt: skip
        # Bounds with room for a loaded machine: a blocking send alone takes 0.6 s, and the
        # sweeper (grace 1 s here, 30 s by default) is not sweeping after the return.
        assert took[-1] < 0.3, took
        assert first is not None and first < 5.0
        assert sent <= 2 * len(waiting)
        assert wait_for(c, waiting, DONE, timeout=60) == Counter(
            {RunState.COMPLETED.value: len(waiting)}
        )
    finally:
        api.close()
