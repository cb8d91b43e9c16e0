"""The HTTP API under load, beside a bare FastAPI endpoint on the same server settings.

(a) `GET /v1/approvals`: a page of 50 over 100,000 pending requests on PostgreSQL (first
    pages and cursor pages in turn), with a reviewer's key: requests/s, p50 and p99.
(b) `POST /v1/runs`: trigger a run (validated, consent checked, the run and its audit
    event committed and flushed, a wake-up sent to Redis), with an app's key.
Baseline, measured in the same run: a bare FastAPI app whose one endpoint returns a
constant, served by uvicorn with the same options (one process, the same event loop and
HTTP parser). Load: keep-alive connections from a separate client process on this machine.
Target: the listing at >= 0.3 of the bare endpoint's rate, with p99 < 50 ms.

Also measured, no target: the floor under any database-backed listing on this machine
(bench/_floor.py: a bare route that reads the same first page with one held asyncpg
connection, no key, no validation, no pool), and each server's CPU per request (from
/proc), so a missed ratio shows whether the API's own work or the machine is the limit.

    python -m bench.api [--quick]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from audit import Actor
from bench._common import PG_DSN, ROOT, Result, parser, pg_schema, pg_url, report
from bench._load import request
from bench.approvals import seed
from bench.runtime import REDIS_DB
from tests.support.runtime import build_runtime

CONNECTIONS = 4
HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """A uvicorn server process on `port`, waited for."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://{HOST}:{port}/openapi.json", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (Linux /proc)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(k) for k in kids] + [g for k in kids for g in _children(int(k))]


def load(
    port: int, requests: list[str], seconds: float, server: subprocess.Popen[bytes],
    connections: int = CONNECTIONS,
) -> dict[str, float]:  # fmt: skip
    """Run the load generator against one server; its figures, with the server's CPU."""
    before = cpu_seconds(server.pid)
    spec = {"host": HOST, "port": port, "requests": requests, "connections": connections,
            "seconds": seconds, "warmup": 1.0}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "bench._load"], cwd=ROOT,
        input=json.dumps(spec), capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout)
    if figures["errors"]:
        raise RuntimeError(f"{figures['errors']} non-2xx responses: {figures}")
    # Over the whole run (warm-up included), per request answered in the measured window:
    # a slight overestimate, the same for every server.
    figures["cpu_us"] = (cpu_seconds(server.pid) - before) / figures["count"] * 1e6
    return figures


def asyncpg_dsn(schema: str) -> str:
    """The bench database as an asyncpg DSN with `schema` first on the search path."""
    parts = dict(kv.split("=", 1) for kv in PG_DSN.split())
    return (
        f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', HOST)}:"
        f"{parts.get('port', '5432')}/{schema}?search_path={schema}"
        "&plan_cache_mode=force_generic_plan"  # as the API's reader runs it
    )


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--workers", type=int, default=1, help="server processes (both servers)")
    args = p.parse_args()
    n = 20_000 if args.quick else 100_000
    rounds, seconds = (1, 3.0) if args.quick else (3, 8.0)
    queue = f"q-bench-api-{uuid.uuid4().hex[:6]}"
    with pg_schema() as schema, tempfile.TemporaryDirectory() as d:
        home = Path(d)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
            "COPILOT_DATABASE_URL": pg_url(schema),
            "COPILOT_BROKER_URL": f"redis://{HOST}:6379/{REDIS_DB}",
            "COPILOT_QUEUE": queue,
            "COPILOT_HOME": str(home),
            "COPILOT_WORKFLOW_MODULES": "bench._flows",
        }
        rt = build_runtime(env["COPILOT_DATABASE_URL"], home, woken=[], with_flows=False,
                           workflow_modules="bench._flows")  # fmt: skip
        seed(schema, n)
        system = Actor.system("bench")
        reviewer = rt.keys.create(tenant="bench", roles=["reviewer"], actor=system)[1]
        app = rt.keys.create(tenant="bench", roles=["app"], actor=system)[1]
        cursors, cursor = [], None
        for _ in range(20):
            _, cursor = rt.gate.queue("bench", cursor=cursor, limit=50)
            cursors.append(cursor)
        rt.close()

        ours_port, bare_port = free_port(), free_port()
        common = ["--workers", str(args.workers), "--log-level", "warning"]
        ours = serve([sys.executable, "-m", "copilot", "api", "--port", str(ours_port), *common],
                     env, ours_port, home / "api.log")  # fmt: skip
        bare = serve([sys.executable, "-m", "uvicorn", "bench._bare:app", "--host", HOST,
                      "--port", str(bare_port), *common], env, bare_port, home / "bare.log")  # fmt: skip
        floor_port = free_port()
        floor_env = {**env, "BENCH_FLOOR_DSN": asyncpg_dsn(schema)}
        floor = serve([sys.executable, "-m", "uvicorn", "bench._floor:app", "--host", HOST,
                       "--port", str(floor_port), *common], floor_env, floor_port,
                      home / "floor.log")  # fmt: skip
        host = f"{HOST}:{ours_port}"
        listing = [request("GET", "/v1/approvals?limit=50", host, token=reviewer)] + [
            request("GET", f"/v1/approvals?limit=50&cursor={c}", host, token=reviewer)
            for c in cursors
        ]
        posts = [
            request("POST", "/v1/runs", host, token=app,
                    body=json.dumps({"workflow": "bench_five", "subject_id": f"acct-{i}"}).encode())
            for i in range(500)
        ]  # fmt: skip
        constant = [request("GET", "/bare", f"{HOST}:{bare_port}")]
        least = [request("GET", "/floor", f"{HOST}:{floor_port}")]
        figures: dict[str, list[dict[str, float]]] = {"bare": [], "floor": [], "list": [],
                                                      "post": []}  # fmt: skip
        try:
            for _ in range(rounds):  # interleaved, so drift on the machine hits them all
                figures["bare"].append(load(bare_port, constant, seconds, bare))
                figures["floor"].append(load(floor_port, least, seconds, floor))
                figures["list"].append(load(ours_port, listing, seconds, ours))
                figures["post"].append(load(ours_port, posts, seconds, ours))
        finally:
            stop(ours)
            stop(bare)
            stop(floor)
            import redis

            redis.Redis(host=HOST, port=6379, db=REDIS_DB).delete(queue)

    def med(kind: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[kind])

    base = med("bare", "rps")
    label = f"page of 50 over {n:,} pending"
    results = [
        Result(f"GET /v1/approvals ({label}), rate", med("list", "rps"), "req/s", base,
               med("list", "rps") / base, ">= 0.3"),
        Result(f"GET /v1/approvals ({label}), p50", med("list", "p50_ms"), "ms",
               med("bare", "p50_ms"), None, "value <= 50"),
        Result(f"GET /v1/approvals ({label}), p99", med("list", "p99_ms"), "ms",
               med("bare", "p99_ms"), None, "value <= 50"),
        Result("floor: same page, bare route, no key (no target), rate", med("floor", "rps"),
               "req/s", base, med("floor", "rps") / base, ">= 0"),
        Result("POST /v1/runs (no target set), rate", med("post", "rps"), "req/s", base,
               med("post", "rps") / base, ">= 0"),
        Result("POST /v1/runs (no target set), p50", med("post", "p50_ms"), "ms",
               med("bare", "p50_ms"), None, "value <= 1000"),
        Result("POST /v1/runs (no target set), p99", med("post", "p99_ms"), "ms",
               med("bare", "p99_ms"), None, "value <= 1000"),
    ]  # fmt: skip
    print(f"bare FastAPI constant endpoint: {base:,.0f} req/s, p50 {med('bare', 'p50_ms'):.2f} ms, "
          f"p99 {med('bare', 'p99_ms'):.2f} ms; {CONNECTIONS} keep-alive connections, "
          f"{rounds} round(s) of {seconds:.0f} s")  # fmt: skip
    for kind, label in (("bare", "bare constant"), ("floor", "floor page"),
                        ("list", "GET /v1/approvals"), ("post", "POST /v1/runs")):  # fmt: skip
        print(f"server CPU per request, {label}: {med(kind, 'cpu_us'):,.0f} us")
    report("api", results)


if __name__ == "__main__":
    main()
