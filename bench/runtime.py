"""Runtime throughput and latency, each beside a floor measured in the same run.

(a) distributed: runs/s of a 5-step workflow (rules, audit) through Celery on Redis with 2
    worker processes and PostgreSQL, beside raw Celery chains of 5 trivial tasks on the same
    broker with the same concurrency, twice: with every step checkpointed durably (the
    default: trigger 1, lease 2, one call per step, 8 round trips) and the same steps
    declared `durability="batched"` (they commit with the completion: 4 round trips).
    Target ours / raw >= 1.5: one task advances all five steps, so the broker hops saved pay
    for the database writes. Runs on a fresh database it creates and drops
    (`bench._common.pg_schema`): a catalog bloated by a test suite's schemas slows it.
(b) in-process: the same workflow with a pause at step 3 and a resume, on the embedded
    SQLite database, beside LangGraph with its SqliteSaver doing 5 nodes with interrupt()
    and Command(resume=...). Target ours / LangGraph <= 0.35 (time per workflow), with our
    audit trail on and theirs having none.

    python -m bench.runtime [--quick]
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import redis
from sqlalchemy import func, select

from audit import Actor
from bench._common import ROOT, Result, parser, pg_schema, pg_url, report
from copilot.db.tables import runs
from copilot.runtime import Runtime
from tests.support.runtime import build_runtime

REDIS_DB = 8


def start_workers(argv: list[str], env: dict[str, str], n: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(n)
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def raw_chains(n: int, *, workers: int = 2) -> float:
    """Chains per second of 5 trivial tasks through `workers` worker processes."""
    queue = f"raw-{uuid.uuid4().hex[:6]}"
    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    env = {**os.environ, "RAW_BROKER": url, "RAW_QUEUE": queue, "RAW_COUNTER": url}
    workers = start_workers(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench._raw_celery",
            "worker",
            "--concurrency=1",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            queue,
            "--loglevel=WARNING",
        ],
        env,
        workers,
    )
    os.environ.update(RAW_BROKER=url, RAW_QUEUE=queue, RAW_COUNTER=url)
    from celery import chain

    from bench import _raw_celery as raw_celery

    raw_celery.app.conf.task_default_queue = queue
    counter = redis.Redis.from_url(url)
    try:
        time.sleep(4)  # workers up
        t0 = time.perf_counter()
        for _ in range(n):
            chain(
                raw_celery.step.s(0), *[raw_celery.step.s() for _ in range(4)], raw_celery.done.s()
            ).apply_async(queue=queue)
        while int(counter.get(f"{queue}:done") or 0) < n:
            time.sleep(0.05)
        return n / (time.perf_counter() - t0)
    finally:
        stop(workers)


@contextmanager
def worker_cluster(
    home: Path, workers: int = 2, *, extra_env: dict[str, str] | None = None
) -> Iterator[Runtime]:
    """A runtime on a fresh PostgreSQL schema with `workers` copilot worker processes on Redis
    (`extra_env`: more variables for the workers and the runtime, e.g. a routes file)."""
    with pg_schema() as schema:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
            "COPILOT_DATABASE_URL": pg_url(schema),
            "COPILOT_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "COPILOT_HOME": str(home),
            "COPILOT_QUEUE": f"q-{uuid.uuid4().hex[:6]}",
            "COPILOT_WORKFLOW_MODULES": "bench._flows",
            "COPILOT_CHECKPOINT_EVERY": "0",
            **(extra_env or {}),
        }
        settings = {
            k.removeprefix("COPILOT_").lower(): v
            for k, v in env.items()
            if k.startswith("COPILOT_") and k not in ("COPILOT_DATABASE_URL", "COPILOT_HOME")
        }
        rt = build_runtime(pg_url(schema), home, with_flows=False, **settings)  # real broker
        argv = [
            sys.executable,
            "-m",
            "copilot",
            "worker",
            "--concurrency",
            "1",
            "--no-beat",
            "--loglevel",
            "WARNING",
        ]
        procs = start_workers(argv, env, workers)
        try:
            time.sleep(5)  # workers up
            yield rt
        finally:
            stop(procs)
            rt.close()


def ours_distributed(
    n: int, home: Path, *, workers: int = 2, workflow: str = "bench_five"
) -> float:
    """Runs per second of the 5-step `workflow` through `workers` copilot worker processes."""
    with worker_cluster(home, workers) as rt:
        t0 = time.perf_counter()
        for i in range(n):
            rt.runner.trigger(workflow, f"acct-{i}", tenant="bench")
        triggered = time.perf_counter() - t0
        while True:
            with rt.engine.connect() as conn:
                done = conn.execute(
                    select(func.count()).select_from(runs).where(runs.c.state == "completed")
                ).scalar()
            if done == n:
                break
            time.sleep(0.05)
        total = time.perf_counter() - t0
        with rt.engine.connect() as conn:
            queued = conn.exec_driver_sql(
                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'audit_pending'"
            ).scalar()
        print(f"  {workflow}: {n} triggers took {triggered:.2f} s of {total:.2f} s; "
              f"{queued} of {n * 8} audit events queued behind the chain lock", flush=True)  # fmt: skip
        return n / total


def ours_inline(n: int, home: Path) -> float:
    """Milliseconds per workflow: trigger, run to the pause, resume, run to the end."""
    rt = build_runtime(f"sqlite:///{home.absolute()}/copilot.db", home, woken=[], with_flows=False,
                       workflow_modules="bench._flows", checkpoint_every=0)  # fmt: skip
    reviewer = Actor.human("bench")
    t0 = time.perf_counter()
    for i in range(n):
        run, _ = rt.runner.trigger("bench_paused", f"acct-{i}", tenant="bench")
        assert rt.runner.run_inline(run.id).state == "waiting"
        rt.runs.resume(run.id, {"approved": True}, actor=reviewer)
        assert rt.runner.run_inline(run.id).state == "completed"
    return (time.perf_counter() - t0) / n * 1000


def langgraph_inline(n: int, home: Path) -> float:
    """Milliseconds per workflow in LangGraph: 5 nodes, interrupt() in the third, resume."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    class State(TypedDict):
        n: int

    def node(state: State) -> dict[str, Any]:
        return {"n": state["n"] + 1}

    def pause(state: State) -> dict[str, Any]:
        interrupt({"kind": "approval"})
        return {"n": state["n"] + 1}

    graph = StateGraph(State)
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        graph.add_node(name, pause if name == "c" else node)
    graph.add_edge(START, "a")
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    graph.add_edge("e", END)
    conn = sqlite3.connect(home / "langgraph.db", check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    app = graph.compile(checkpointer=SqliteSaver(conn))
    t0 = time.perf_counter()
    for i in range(n):
        config = {"configurable": {"thread_id": f"t-{i}"}}
        app.invoke({"n": 0}, config)
        final = app.invoke(Command(resume=True), config)
        assert final["n"] == 5
    elapsed = (time.perf_counter() - t0) / n * 1000
    conn.close()
    return elapsed


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n_dist = 100 if args.quick else 400
    n_inline = 100 if args.quick else 500
    results = []
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        floor = raw_chains(n_dist)
        mine = ours_distributed(n_dist, home / "dist")
        batched = ours_distributed(n_dist, home / "batched", workflow="bench_five_batched")
        for name, value in (("every step durable (default)", mine),
                            ('durability="batched"', batched)):  # fmt: skip
            results.append(Result(f"distributed, {name}: 5-step runs (Celery/Redis, 2 workers, "
                                  "PostgreSQL)", value, "runs/s", floor, value / floor, ">= 1.5"))  # fmt: skip
        lg = langgraph_inline(n_inline, home)
        ours = ours_inline(n_inline, home / "inline")
        results.append(
            Result(
                "in-process: 5 steps, pause at 3, resume (SQLite)",
                ours,
                "ms/workflow",
                lg,
                ours / lg,
                "<= 0.35",
            )
        )
    report("runtime", results)


if __name__ == "__main__":
    main()
