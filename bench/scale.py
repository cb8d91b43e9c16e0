"""Scaling out on one host, and what each unit of work costs the database.

Throughput: 5-step runs through Celery on Redis with 1, 2 and 4 `copilot worker`
processes against PostgreSQL, each beside raw Celery chains of 5 trivial tasks with the
same broker and the same number of processes, measured in this run, configurations
interleaved. Costs: a PostgreSQL cluster of this bench's own (`initdb`, with
pg_stat_statements) counts, per unit, the statements clients sent (round trips), the
transactions and the rows written (inserted + updated + deleted): a 5-step run, a run to an
approval gate, a reviewer's decision, the run after the decision, an audit entry
appended on its own. docs/capacity.md builds the capacity model on these figures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from audit import Actor, AuditEvent
from bench._common import Result, parser, report
from bench.runtime import ours_distributed, raw_chains
from copilot.runtime import Runtime
from tests.support.runtime import build_runtime

WORKERS = (1, 2, 4)
# What docs/capacity.md's model assumes each unit costs (the figures measured when it was
# written, rounded up): a change that makes a unit dearer shows here as MISSED.
BUDGETS = {
    "5-step run (trigger to completed)":
        {"round_trips": 20, "transactions": 11, "row_writes": 22, "audit_entries": 9},
    "run to its approval gate (1 step, 1 request)":
        {"round_trips": 18, "transactions": 8, "row_writes": 13, "audit_entries": 6},
    "a reviewer's decision":
        {"round_trips": 16, "transactions": 1, "row_writes": 7, "audit_entries": 3},
    "run after the decision (execute, 1 step, complete)":
        {"round_trips": 32, "transactions": 11, "row_writes": 13, "audit_entries": 5},
    "audit entry appended on its own":
        {"round_trips": 2, "transactions": 3, "row_writes": 1, "audit_entries": 1},
}  # fmt: skip
PG_BIN = Path(shutil.which("postgres") or "/usr/lib/postgresql/bin/postgres").parent


@contextmanager
def own_postgres() -> Iterator[str]:
    """A PostgreSQL cluster of this bench's own on a Unix socket; its SQLAlchemy URL."""
    d = Path(tempfile.mkdtemp(prefix="copilot-scale-"))
    d.chmod(0o755)  # the postgres user runs the server from inside it
    data, sock = d / "data", d / "sock"
    sock.mkdir()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(d, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres", "--no-sync"], check=True, capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [*as_user, str(PG_BIN / "postgres"), "-D", str(data), "-c", "listen_addresses=",
         "-c", f"unix_socket_directories={sock}", "-c", "fsync=off",
         "-c", "shared_preload_libraries=pg_stat_statements"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            if (sock / ".s.PGSQL.5432").exists():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def _counters(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
        time.sleep(0.6)
        calls = conn.execute(text("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                                  "WHERE dbid = (SELECT oid FROM pg_database "
                                  "WHERE datname = current_database())")).scalar_one()  # fmt: skip
        row = conn.execute(text(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS writes "
            "FROM pg_stat_database WHERE datname = current_database()")).one()  # fmt: skip
        entries = conn.execute(text("SELECT count(*) FROM audit_entries")).scalar_one()
        pending = conn.execute(text("SELECT count(*) FROM audit_pending")).scalar_one()
    return {"round_trips": int(calls), "transactions": int(row.xact_commit),
            "row_writes": int(row.writes), "audit_entries": int(entries) + int(pending)}  # fmt: skip


def _measure(engine: Engine, n: int, work: Any) -> dict[str, float]:
    """Per unit: the counters' growth over `n` calls of `work(i)`, less the reading's own."""
    idle0 = _counters(engine)
    idle1 = _counters(engine)  # what two readings cost by themselves
    overhead = {k: idle1[k] - idle0[k] for k in idle0}
    for i in range(n):
        work(i)
    after = _counters(engine)
    return {k: (after[k] - idle1[k] - overhead[k]) / n for k in after}


def costs(n: int) -> dict[str, dict[str, float]]:
    """Round trips, transactions and row writes per unit of work, on an own cluster."""
    with own_postgres() as url, tempfile.TemporaryDirectory() as home:
        rt: Runtime = build_runtime(url, Path(home), woken=[], with_flows=False,
                                    workflow_modules="bench._flows")  # fmt: skip
        with rt.engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            conn.commit()
        rt.runner.run_inline(rt.runner.trigger("bench_five", "warm", tenant="t")[0].id)
        out = {}
        out["5-step run (trigger to completed)"] = _measure(rt.engine, n, lambda i: (
            rt.runner.run_inline(rt.runner.trigger("bench_five", f"a{i}", tenant="t")[0].id)))  # fmt: skip
        waiting: list[str] = []
        out["run to its approval gate (1 step, 1 request)"] = _measure(rt.engine, n, lambda i: (
            waiting.append(rt.runner.run_inline(
                rt.runner.trigger("bench_proposing", f"p{i}", tenant="t")[0].id).id)))  # fmt: skip
        requests = {r.run_id: r for r in rt.gate.queue("t", limit=n)[0]}

        def decide(i: int) -> None:
            req = requests[waiting[i]]
            rt.gate.decide(req.id, reviewer="rev", roles={"reviewer"}, decision="approve",
                           payload_hash=req.payload_hash)  # fmt: skip

        out["a reviewer's decision"] = _measure(rt.engine, n, decide)
        out["run after the decision (execute, 1 step, complete)"] = _measure(
            rt.engine, n, lambda i: rt.runner.run_inline(waiting[i])
        )
        event = AuditEvent(event_type="bench.note", actor=Actor.system("bench"), data={"k": 1})
        out["audit entry appended on its own"] = _measure(
            rt.engine, n, lambda i: rt.audit.append("t", [event])
        )
        rt.close()
    return out


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = 20 if args.quick else 300
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as d:
        for w in WORKERS:  # interleaved: each configuration's floor right beside it
            floor = raw_chains(n, workers=w)
            mine = ours_distributed(n, Path(d) / f"w{w}", workers=w)
            results.append(Result(f"5-step runs, {w} worker process(es), Celery/Redis, PostgreSQL",
                                  mine, "runs/s", floor, mine / floor, ">= 0.9"))  # fmt: skip
            print(f"{w} worker(s): ours {mine:.1f} runs/s, raw Celery chains {floor:.1f}/s",
                  flush=True)  # fmt: skip
    for unit, c in costs(10 if args.quick else 100).items():
        for key, value in c.items():
            budget = BUDGETS[unit][key]
            results.append(Result(f"{unit}: {key.replace('_', ' ')}", value, "per unit",
                                  None, None, f"value <= {budget}"))  # fmt: skip
    report("scale", results)


if __name__ == "__main__":
    main()
