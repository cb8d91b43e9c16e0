"""Decision to delivered-to-webhook latency through real workers and a real receiver.

A reviewer approves an email whose kind is routed (routes file) to the `webhook`
executor; the receiver is its own process (`tests.support.webhook_receiver`: verifies the
signature, records the effect in SQLite once per Idempotency-Key). The figure is the time
from `gate.decide` returning to the receiver's committed effect, with 2 copilot worker
processes on Redis and PostgreSQL. Target p50 < 100 ms.

    python -m bench.delivery [--quick]
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

from bench._common import Result, parser, report
from bench.approvals import percentiles
from bench.runtime import worker_cluster
from tests.support.webhook_receiver import ReceiverProcess

SECRET = "bench-secret"


def delivered(db: Path, key: str) -> bool:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT 1 FROM effects WHERE key = ?", (key,)).fetchone() is not None


def decision_to_delivered(n: int, home: Path) -> tuple[float, float]:
    """(p50, p99) ms from approve to the receiver's recorded effect."""
    receiver = ReceiverProcess(home / "receiver.db", SECRET)
    receiver.start()
    routes = home / "routes.yaml"
    routes.write_text(
        f"routes:\n  email_customer: {{executor: webhook, url: '{receiver.url}', "
        "secret_env: BENCH_HOOK_SECRET}\n"
    )
    os.environ["BENCH_HOOK_SECRET"] = SECRET  # the runtime in this process reads it too
    env = {"COPILOT_ROUTES_PATH": str(routes), "BENCH_HOOK_SECRET": SECRET}
    try:
        with worker_cluster(home, extra_env=env) as rt:
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
                rt.gate.decide(req.id, reviewer="bench-reviewer", roles={"reviewer"},
                               decision="approve", payload_hash=req.payload_hash)  # fmt: skip
                while not delivered(receiver.db, f"approval:{req.id}"):
                    time.sleep(0.001)
                samples.append((time.perf_counter() - t0) * 1000)
            return percentiles(samples)
    finally:
        receiver.kill()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    with tempfile.TemporaryDirectory() as d:
        p50, p99 = decision_to_delivered(20 if args.quick else 100, Path(d))
    name = "decision to delivered-to-webhook (Celery/Redis, 2 workers, receiver process)"
    results = [
        Result(f"{name}, p50", p50, "ms", None, None, "value <= 100"),
        Result(f"{name}, p99", p99, "ms", None, None, "value <= 1000"),
    ]
    report("delivery", results)


if __name__ == "__main__":
    main()
