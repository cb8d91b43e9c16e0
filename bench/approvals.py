"""The approval queue under load, and how fast a decision becomes an executed action.

(a) Listing a page of 50 from 100,000 pending requests on PostgreSQL (the reviewer's
    queue: by deadline then risk, cursor pages and filters), p50 and p99, beside a
    primary-key fetch of 50 rows with the raw driver in the same run. Target p99 < 50 ms.
(b) Decision to executed through real Celery workers on Redis: the time from a reviewer's
    approve to the action's receipt, p50 and p99. Target p50 < 100 ms.

    python -m bench.approvals [--quick]
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import select

from approvals import Catalog, Gate, Policy
from approvals.request import stored_document
from approvals.tables import requests
from bench._common import Result, parser, pg_dsn, pg_schema, pg_url, report
from bench.runtime import worker_cluster
from tests.support.runtime import build_runtime

KINDS = ["email_customer", "schedule_call", "trial_training", "billing_reminder", "escalate"]
RISKS = [("low", 0), ("medium", 1), ("high", 2)]


def seed(schema: str, n: int) -> None:
    """n pending requests of realistic shape, straight into the table (COPY)."""
    rng = random.Random(1)
    now = time.time()
    cols = (
        "id",
        "tenant",
        "workflow",
        "run_id",
        "subject_id",
        "action_id",
        "version",
        "kind",
        "payload",
        "payload_hash",
        "risk",
        "risk_rank",
        "confidence",
        "level",
        "required_n",
        "role",
        "status",
        "policy_rule",
        "policy_version",
        "shadow",
        "triggered_by",
        "created_at",
        "updated_at",
        "deadline",
    )
    with psycopg.connect(pg_dsn(schema), options=f"-csearch_path={schema}") as conn:
        names = ", ".join((*cols, "doc"))
        with conn.cursor().copy(f"COPY approval_requests ({names}) FROM STDIN") as copy:
            for i in range(n):
                risk, rank = rng.choice(RISKS)
                row = (
                    uuid.uuid4().hex,
                    "bench",
                    rng.choice(["next_actions", "tone_draft"]),
                    uuid.uuid4().hex,
                    f"acct-{i % 5000}",
                    uuid.uuid4().hex,
                    1,
                    rng.choice(KINDS),
                    '{"to": "acct", "body": "..."}',
                    "0" * 64,
                    risk,
                    rank,
                    0.8,
                    "full",
                    1,
                    "reviewer",
                    "pending",
                    "default",
                    "bench@1",
                    "[]",
                    "app",
                    now,
                    now,
                    now + rng.uniform(0, 72 * 3600),
                )
                # With the document the gate would have stored for it (served by the queue read).
                copy.write_row((*row, stored_document(dict(zip(cols, row, strict=True)))))
        conn.execute("ANALYZE approval_requests")


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return statistics.median(samples), q[98]


def listing(schema: str, rounds: int) -> tuple[float, float, float, float]:
    """(p50, p99) of gate.queue pages and of a raw primary-key fetch of 50 rows, in ms."""
    rt = build_runtime(pg_url(schema), woken=[], with_flows=False)
    gate = Gate(rt.engine, rt.audit, Catalog(), Policy())
    rng = random.Random(2)
    ours, floor = [], []
    cursor = None
    with rt.engine.connect() as conn:
        ids = list(conn.execute(select(requests.c.id).limit(5000)).scalars())
    with psycopg.connect(pg_dsn(schema), options=f"-csearch_path={schema}", autocommit=True) as raw:
        for warm in ({}, {"kind": KINDS[0]}, {"risk": "high"}, {"workflow": "tone_draft"}):
            _, nxt = gate.queue(
                "bench", limit=50, **warm
            )  # plans and caches, as on a server that is up
            gate.queue("bench", limit=50, cursor=nxt, **warm)
        for i in range(rounds):
            filters = rng.choice(
                [{}, {"kind": rng.choice(KINDS)}, {"risk": "high"}, {"workflow": "tone_draft"}]
            )
            t0 = time.perf_counter()
            page, cursor = gate.queue(
                "bench", cursor=cursor if i % 5 else None, limit=50, **filters
            )
            ours.append((time.perf_counter() - t0) * 1000)
            assert len(page) == 50
            if filters:
                cursor = None
            sample = rng.sample(ids, 50)
            t0 = time.perf_counter()
            raw.execute("SELECT * FROM approval_requests WHERE id = ANY(%s)", (sample,)).fetchall()
            floor.append((time.perf_counter() - t0) * 1000)
    rt.close()
    return (*percentiles(ours), *percentiles(floor))


def decision_latency(n: int, home: Path) -> tuple[float, float]:
    """(p50, p99) ms from approve to the executed receipt, through 2 worker processes."""
    with worker_cluster(home) as rt:
        runs = [
            rt.runner.trigger("bench_proposing", f"acct-{i}", tenant="bench")[0].id
            for i in range(n)
        ]
        deadline = time.monotonic() + 120
        while len(rt.gate.queue("bench", limit=n)[0]) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        pending = {r.run_id: r for r in rt.gate.queue("bench", limit=n)[0]}
        samples = []
        for run_id in runs:
            req = pending[run_id]
            t0 = time.perf_counter()
            rt.gate.decide(
                req.id,
                reviewer="bench-reviewer",
                roles={"reviewer"},
                decision="approve",
                payload_hash=req.payload_hash,
            )
            rt.enqueue(run_id)
            while rt.gate.get(req.id).execution_status != "done":
                time.sleep(0.002)
            samples.append((time.perf_counter() - t0) * 1000)
        return percentiles(samples)


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = 20_000 if args.quick else 100_000
    results = []
    with pg_schema() as schema:
        build_runtime(pg_url(schema), woken=[], with_flows=False).close()  # migrated
        seed(schema, n)
        p50, p99, f50, f99 = listing(schema, 100 if args.quick else 400)
    results.append(
        Result(
            f"queue page of 50 over {n:,} pending, p50", p50, "ms", f50, p50 / f50, "value <= 50"
        )
    )
    results.append(
        Result(
            f"queue page of 50 over {n:,} pending, p99", p99, "ms", f99, p99 / f99, "value <= 50"
        )
    )
    with tempfile.TemporaryDirectory() as d:
        d50, d99 = decision_latency(20 if args.quick else 60, Path(d))
    results.append(
        Result(
            "decision to executed (Celery/Redis, 2 workers), p50",
            d50,
            "ms",
            None,
            None,
            "value <= 100",
        )
    )
    results.append(
        Result(
            "decision to executed (Celery/Redis, 2 workers), p99",
            d99,
            "ms",
            None,
            None,
            "value <= 1000",
        )
    )
    report("approvals", results)


if __name__ == "__main__":
    main()
