"""Decide with logging: HTTP on PostgreSQL, beside a bare endpoint and the raw-driver floor.

(a) `POST /v1/decide` on `onboarding.next_step` with an app key, on PostgreSQL holding
    100,000 subjects (four onboarding signals each) and 1,000,000 logged decisions (seeded
    with INSERT ... SELECT generate_series into a database this bench creates and drops):
    the subject's lock, the reads, the rules, the decision row and its audit entry,
    committed before the answer. Requests/s, p50, p99.
Baselines, measured in the same run with the same uvicorn options: a bare FastAPI endpoint
returning a constant (bench/_bare.py), and the raw-driver floor (bench/_decide_floor.py:
the same reads and insert with asyncpg behind a bare route, no key, no rules, no audit).
Targets: rate >= 0.25 of the bare endpoint and >= 0.5 of the floor (4 keep-alive clients,
each sending its next request when the last is answered: the server saturated); p99 < 20 ms
and p50 < 5 ms for one client at a time (what a request costs when it does not queue; at
saturation a closed loop of 4 clients waits about 4x the service time, printed too).
(b) In-process `Decider.decide()` on SQLite (WAL): p50 and p99 over sequential decides,
    beside the same reads and insert with the sqlite3 module. Target p99 < 2 ms.

    python -m bench.decide [--quick]
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit import Actor
from bench._common import PG_DSN, Result, parser, report
from bench._load import request
from bench.api import HOST, free_port, load, serve, stop
from tests.support.runtime import build_runtime

JOURNEY = "copilot.placements.onboarding"
CONTEXT = {"onboarding.plan": "trial"}


@contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, asyncpg DSN) of a fresh database, dropped afterwards."""
    import psycopg

    name = "bench_decide_" + uuid.uuid4().hex[:8]
    parts = dict(kv.split("=", 1) for kv in PG_DSN.split())
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    where = f"{parts.get('user', 'postgres')}@{parts.get('host', HOST)}:{parts.get('port', '5432')}/{name}"
    try:
        yield f"postgresql+psycopg://{where}", f"postgresql://{where}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def seed(url: str, subjects: int, decisions: int) -> float:
    """Signals for every subject and the logged decisions, in SQL; seconds taken."""
    import psycopg

    started = time.perf_counter()
    now = time.time()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        for name, expr in (("onboarding.steps_done", "(i %% 5)::text"),
                           ("onboarding.has_data", "CASE WHEN i %% 3 = 0 THEN 'true' ELSE 'false' END"),
                           ("onboarding.teammates", "(i %% 4)::text"),
                           ("onboarding.plan", "'\"trial\"'")):  # fmt: skip
            conn.execute(
                "INSERT INTO signals (tenant, subject_id, name, value, observed_at, source) "
                f"SELECT 'bench', 'acct-' || i, %s, {expr}, %s - (i %% 3600), 'bench' "
                "FROM generate_series(1, %s) AS i", (name, now, subjects))  # fmt: skip
        conn.execute(
            "INSERT INTO placement_decisions (id, tenant, subject_id, placement, decided_at, chosen, "
            "candidates, features, propensity, policy, version, holdout, level, reasons, counted, "
            "segment, explanation) SELECT md5(i::text), 'bench', 'acct-' || (i %% %s + 1), "
            "'onboarding.next_step', %s - 86400 - (i %% 2592000), 'take_the_tour', "
            "'[\"take_the_tour\"]', '{}', 1.0, 'rules', '1', i %% 10 = 0, 'full', '[]', i %% 10 <> 0, "
            "'trial', '' FROM generate_series(1, %s) AS i", (subjects, now, decisions))  # fmt: skip
        conn.execute(
            "INSERT INTO placement_events (tenant, event_id, decision_id, subject_id, placement, "
            "candidate, kind, at) SELECT 'bench', 'ev-' || i, md5(i::text), 'acct-' || (i %% %s + 1), "
            "'onboarding.next_step', 'take_the_tour', CASE WHEN i %% 5 = 0 THEN 'dismiss' ELSE "
            "'impression' END, %s - 86400 - i FROM generate_series(1, %s) AS i",
            (subjects, now, decisions // 5))  # fmt: skip
        conn.commit()
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def http(args_quick: bool) -> tuple[list[Result], str]:
    subjects, decisions = (10_000, 100_000) if args_quick else (100_000, 1_000_000)
    rounds, seconds = (1, 2.0) if args_quick else (3, 8.0)
    with database() as (url, dsn), tempfile.TemporaryDirectory() as d:
        home = Path(d)
        rt = build_runtime(url, home, woken=[], with_flows=False, placement_modules=JOURNEY)
        app = rt.keys.create(tenant="bench", roles=["app"], actor=Actor.system("bench"))[1]
        rt.close()
        took = seed(url, subjects, decisions)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
               "COPILOT_DATABASE_URL": url, "COPILOT_HOME": str(home),
               "COPILOT_ALLOW_EMBEDDED": "true",  # one host: decide needs no broker
               "COPILOT_PLACEMENT_MODULES": JOURNEY, "BENCH_FLOOR_DSN": dsn}  # fmt: skip
        ports = {k: free_port() for k in ("ours", "bare", "floor")}
        common = ["--workers", "1", "--log-level", "warning"]
        uv = [sys.executable, "-m", "uvicorn", "--host", HOST]
        servers = {
            "ours": serve([sys.executable, "-m", "copilot", "api", "--port", str(ports["ours"]), *common],
                          env, ports["ours"], home / "api.log"),
            "bare": serve([*uv, "bench._bare:app", "--port", str(ports["bare"]), *common], env,
                          ports["bare"], home / "bare.log"),
            "floor": serve([*uv, "bench._decide_floor:app", "--port", str(ports["floor"]), *common],
                           env, ports["floor"], home / "floor.log"),
        }  # fmt: skip
        rng = random.Random(3)
        picks = [f"acct-{rng.randint(1, subjects)}" for _ in range(2000)]

        def body(s: str) -> bytes:
            return json.dumps(
                {"placement": "onboarding.next_step", "subject_id": s, "context": CONTEXT}
            ).encode()

        reqs = {
            "ours": [request("POST", "/v1/decide", f"{HOST}:{ports['ours']}", token=app, body=body(s)) for s in picks],
            "bare": [request("GET", "/bare", f"{HOST}:{ports['bare']}")],
            "floor": [request("POST", "/floor", f"{HOST}:{ports['floor']}", body=body(s)) for s in picks],
        }  # fmt: skip
        figures: dict[str, list[dict[str, float]]] = {k: [] for k in servers}
        alone: dict[str, list[dict[str, float]]] = {"floor": [], "ours": []}
        try:
            for _ in range(rounds):  # interleaved, so drift on the machine hits them all
                for kind in ("bare", "floor", "ours"):
                    figures[kind].append(load(ports[kind], reqs[kind], seconds, servers[kind]))
                for kind in ("floor", "ours"):  # latency: one request at a time
                    alone[kind].append(load(ports[kind], reqs[kind], seconds, servers[kind], 1))
        finally:
            for proc in servers.values():
                stop(proc)

    def med(kind: str, key: str, of: dict[str, list[dict[str, float]]] = figures) -> float:
        return statistics.median(f[key] for f in of[kind])

    base, floor = med("bare", "rps"), med("floor", "rps")
    label = f"{subjects:,} subjects, {decisions:,} logged"
    results = [
        Result(f"POST /v1/decide ({label}), rate vs bare", med("ours", "rps"), "req/s", base,
               med("ours", "rps") / base, ">= 0.25"),
        Result(f"POST /v1/decide ({label}), rate vs raw floor", med("ours", "rps"), "req/s", floor,
               med("ours", "rps") / floor, ">= 0.5"),
        Result(f"POST /v1/decide ({label}), p50, one client", med("ours", "p50_ms", alone), "ms",
               med("floor", "p50_ms", alone), None, "value <= 5"),
        Result(f"POST /v1/decide ({label}), p99, one client", med("ours", "p99_ms", alone), "ms",
               med("floor", "p99_ms", alone), None, "value <= 20"),
    ]  # fmt: skip
    notes = (f"seeded in {took:.1f} s; bare {base:,.0f} req/s (p50 {med('bare', 'p50_ms'):.2f} ms), "
             f"raw floor {floor:,.0f} req/s (p50 {med('floor', 'p50_ms'):.2f} ms, p99 "
             f"{med('floor', 'p99_ms'):.2f} ms); at saturation (4 clients) decide p50 "
             f"{med('ours', 'p50_ms'):.1f} ms, p99 {med('ours', 'p99_ms'):.1f} ms (a closed loop: about "
             f"4x the service time); server CPU per decide {med('ours', 'cpu_us'):,.0f} us, "
             f"per floor request {med('floor', 'cpu_us'):,.0f} us; {rounds} round(s) of {seconds:.0f} s, "
             "4 keep-alive connections")  # fmt: skip
    return results, notes


def in_process(quick: bool) -> list[Result]:
    n = 300 if quick else 3000
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        rt = build_runtime(f"sqlite:///{home / 'copilot.db'}", home, woken=[], with_flows=False,
                           placement_modules=JOURNEY)  # fmt: skip
        for i in range(200):
            rt.registry.signals.ingest(rt.engine, rt.audit, tenant="bench", subject_id=f"acct-{i}",
                                       values={"onboarding.steps_done": i % 5, "onboarding.has_data": False,
                                               "onboarding.teammates": 0}, source="bench")  # fmt: skip
        ours = _timed(
            n,
            lambda i: rt.decider.decide(
                "bench", "onboarding.next_step", f"acct-{i % 200}", CONTEXT
            ),
        )
        db = sqlite3.connect(home / "copilot.db", isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        raw = _timed(n, lambda i: _raw_sqlite(db, f"acct-{i % 200}"))
        db.close()
        rt.close()
    return [
        Result("Decider.decide() in process, SQLite, p50", ours[0], "ms", raw[0], ours[0] / raw[0], "value <= 2"),
        Result("Decider.decide() in process, SQLite, p99", ours[1], "ms", raw[1], ours[1] / raw[1], "value <= 2"),
    ]  # fmt: skip


def _timed(n: int, fn: object) -> tuple[float, float]:
    took = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)  # type: ignore[operator]
        took.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(took[n // 10 :], n=100)  # the first tenth warms caches
    return statistics.median(took[n // 10 :]), q[98]


def _raw_sqlite(db: sqlite3.Connection, subject: str) -> None:
    now = time.time()
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "SELECT * FROM subject_preferences WHERE tenant = ? AND subject_id = ?", ("bench", subject)
    )
    db.execute("SELECT name, value, observed_at FROM signals WHERE tenant = ? AND subject_id = ? AND name IN "
               "(?, ?, ?, ?)", ("bench", subject, "onboarding.steps_done", "onboarding.has_data",
                                 "onboarding.teammates", "onboarding.plan")).fetchall()  # fmt: skip
    db.execute("SELECT placement, decided_at FROM placement_decisions WHERE tenant = ? AND subject_id = ? "
               "AND decided_at > ? AND counted", ("bench", subject, now - 86400)).fetchall()  # fmt: skip
    db.execute(
        "SELECT kind FROM placement_events WHERE tenant = ? AND subject_id = ?", ("bench", subject)
    ).fetchall()
    db.execute("INSERT INTO placement_decisions VALUES (?, 'bench', ?, 'onboarding.next_step', ?, 'x', '[]', "
               "'{}', 1.0, 'rules', '1', 0, 'full', '[]', 0, NULL, '')", (uuid.uuid4().hex, subject, now))  # fmt: skip
    db.execute("COMMIT")


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    local = in_process(args.quick)
    results, notes = http(args.quick)
    print(notes)
    report("decide", local + results)


if __name__ == "__main__":
    main()
