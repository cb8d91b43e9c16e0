"""The action feed's throughput (claim + ack), beside a bare SKIP LOCKED loop, in the same run.

N outbox actions are drained on PostgreSQL by C consumer threads, each claiming batches
of 10 and acking every action on its own (as an app does, one ack per action):
(a) through `DeliveryStore` (copilot/delivery/store.py): compare-and-set claims under
    `FOR UPDATE SKIP LOCKED`, each change with its audit event in the same transaction;
(b) the floor as the issue words it: a bare `SELECT ... FOR UPDATE SKIP LOCKED` +
    `UPDATE` loop, one action per transaction, no audit. Target: (a) >= 0.5 of (b);
(b') a stricter floor, our shape as bare SQL: one `SELECT ... FOR UPDATE SKIP LOCKED` +
    `UPDATE` per batch of 10, then one `UPDATE` and commit per ack, no audit. Target:
    (a) >= 0.5 of (b') too (each ack and claim of (a) also appends its audit event);
(a') the same through `DeliveryStore.ack_many`: one ack call per claimed batch (as a
    consumer that handles a page at once does, `POST /v1/actions/ack`), against (b);
(b'') for the record, a bare batch floor for (a'): one SKIP LOCKED claim and one
    `UPDATE ... WHERE id = ANY(...)` per batch, no audit;
(c) for the record, through the HTTP API: a real `copilot api` process and C consumer
    processes-worth of threads using `copilot.client` (`actions()` then `ack()`); no target.

    python -m bench.actions [--quick]
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from audit import Actor
from bench._common import PG_DSN, Result, parser, pg_schema, pg_url, report
from copilot.client import Client
from copilot.db.tables import deliveries
from copilot.delivery.store import Ack
from copilot.runtime import Runtime
from tests.support.live import LiveServer
from tests.support.runtime import build_runtime

CONSUMERS = 4
BATCH = 10


def seed(rt: Runtime, n: int, prefix: str) -> None:
    """`n` ready outbox actions, inserted in bulk (opening them one by one is not measured)."""
    now = time.time()
    rows = [
        {"idempotency_key": f"bench:{prefix}:{i}", "tenant": "bench", "run_id": None,
         "approval_id": None, "subject_id": f"acct-{i % 100}", "kind": "post_note",
         "route": "outbox", "payload": json.dumps({"i": i}), "state": "ready", "attempts": 0,
         "max_attempts": 8, "due_at": now, "created_at": now, "updated_at": now}
        for i in range(n)
    ]  # fmt: skip
    with rt.engine.begin() as conn:
        conn.execute(deliveries.insert(), rows)


def drain(consume: Callable[[str], int], n: int) -> float:
    """Actions per second for CONSUMERS threads running `consume(name)` until it returns 0."""
    done = [0] * CONSUMERS
    barrier = threading.Barrier(CONSUMERS + 1)

    def worker(i: int) -> None:
        barrier.wait()
        while got := consume(f"c{i}"):
            done[i] += got

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONSUMERS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert sum(done) == n, (sum(done), n)  # every action exactly once
    return n / elapsed


def through_store(rt: Runtime, n: int) -> float:
    """(a) claim + ack through the DeliveryStore."""
    store = rt.deliveries

    def consume(name: str) -> int:
        batch = store.claim("bench", name, limit=BATCH)
        for d in batch:
            store.ack("bench", d.id, d.claim or "", "delivered", {"by": name})
        return len(batch)

    return drain(consume, n)


def through_store_batched(rt: Runtime, n: int) -> float:
    """(a') claim + one `ack_many` per batch through the DeliveryStore."""
    store = rt.deliveries

    def consume(name: str) -> int:
        batch = store.claim("bench", name, limit=BATCH)
        if batch:
            acks = [Ack(d.id, d.claim or "", "delivered", {"by": name}) for d in batch]
            assert all(not isinstance(r, Exception) for r in store.ack_many("bench", acks))
        return len(batch)

    return drain(consume, n)


BARE_TABLE = """
CREATE TABLE bare (id bigserial PRIMARY KEY, tenant text NOT NULL, state text NOT NULL,
                   claim_token text, due_at double precision, payload text NOT NULL)
"""


def through_bare_sql(schema: str, n: int, *, batch_acks: bool = False) -> float:
    """(b) the floor: SELECT ... FOR UPDATE SKIP LOCKED + UPDATE per batch, UPDATE per ack;
    (b'') with `batch_acks`, one `UPDATE ... WHERE id = ANY(...)` per batch instead."""
    dsn = f"{PG_DSN} options=-csearch_path={schema}"
    table = "batches" if batch_acks else "bare"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(BARE_TABLE.replace("bare", table))
        conn.execute(f"CREATE INDEX ON {table} (tenant, state, id)")
        conn.execute(f"INSERT INTO {table} (tenant, state, due_at, payload) SELECT 'bench', "
                     "'ready', 0, '{\"i\": 1}' FROM generate_series(1, %s)", (n,))  # fmt: skip
    local = threading.local()

    def consume(name: str) -> int:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(dsn)
        conn = local.conn
        with conn.transaction():
            ids = [r[0] for r in conn.execute(
                f"SELECT id FROM {table} WHERE tenant = 'bench' AND state = 'ready' AND "
                "due_at <= %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (time.time(), BATCH))]  # fmt: skip
            if ids:
                conn.execute(f"UPDATE {table} SET state = 'claimed', claim_token = %s, "
                             "due_at = %s WHERE id = ANY(%s)", (name, time.time() + 30, ids))  # fmt: skip
        for acked in [ids] if batch_acks and ids else [[i] for i in ids]:
            with conn.transaction():
                conn.execute(f"UPDATE {table} SET state = 'delivered', due_at = NULL "
                             "WHERE id = ANY(%s) AND claim_token = %s", (acked, name))  # fmt: skip
        return len(ids)

    try:
        return drain(consume, n)
    finally:
        conn = getattr(local, "conn", None)
        if conn is not None:
            conn.close()


def through_classic_loop(schema: str, n: int) -> float:
    """(b') the loop as the issue words it: per action, one transaction of
    `SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED` + `UPDATE` (done)."""
    dsn = f"{PG_DSN} options=-csearch_path={schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE classic (LIKE bare INCLUDING ALL)")
        conn.execute("INSERT INTO classic (tenant, state, due_at, payload) SELECT 'bench', "
                     "'ready', 0, '{\"i\": 1}' FROM generate_series(1, %s)", (n,))  # fmt: skip
    local = threading.local()

    def consume(name: str) -> int:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(dsn)
        conn = local.conn
        with conn.transaction():
            row = conn.execute(
                "SELECT id FROM classic WHERE tenant = 'bench' AND state = 'ready' "
                "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()  # fmt: skip
            if row is None:
                return 0
            conn.execute("UPDATE classic SET state = 'done', claim_token = %s WHERE id = %s",
                         (name, row[0]))  # fmt: skip
        return 1

    return drain(consume, n)


def through_http(url: str, key: str, n: int) -> float:
    """(c) claim + ack through a real API process with `copilot.client`."""
    local = threading.local()

    def consume(name: str) -> int:
        if not hasattr(local, "api"):
            local.api = Client(url, key)
        page = local.api.actions(limit=BATCH)
        for action in page.items:
            local.api.ack(action, "delivered", {"by": name})
        return len(page.items)

    return drain(consume, n)


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n, n_http = (2_000, 600) if args.quick else (10_000, 2_000)
    with pg_schema() as schema:
        home = Path(tempfile.mkdtemp(prefix="bench-actions-"))
        rt = build_runtime(pg_url(schema), home, woken=[], with_flows=False)
        try:
            seed(rt, n, "store")
            floor = through_bare_sql(schema, n)
            classic = through_classic_loop(schema, n)
            batches = through_bare_sql(schema, n, batch_acks=True)
            ours = through_store(rt, n)
            seed(rt, n, "batched")
            batched = through_store_batched(rt, n)
            key = rt.keys.create(tenant="bench", roles=["app"], name="crm",
                                 actor=Actor.system("bench"))[1]  # fmt: skip
            seed(rt, n_http, "http")
        finally:
            rt.close()
        env = {"COPILOT_DATABASE_URL": pg_url(schema), "COPILOT_HOME": str(home)}
        server = LiveServer(env, home / "api.log").start()
        try:
            http = through_http(server.url, key, n_http)
        finally:
            server.stop()
    report(
        "actions",
        [
            Result(f"feed claim + ack, {CONSUMERS} consumers, store (bare SKIP LOCKED loop: "
                   "baseline)", ours, "actions/s", classic, ours / classic, ">= 0.5"),
            Result(f"feed claim + ack, {CONSUMERS} consumers, store (bare batch claim + ack: "
                   "baseline)", ours, "actions/s", floor, ours / floor, ">= 0.5"),
            Result(f"feed claim + batch ack, {CONSUMERS} consumers, store (bare SKIP LOCKED loop:"
                   " baseline)", batched, "actions/s", classic, batched / classic, ">= 0.5"),
            Result(f"feed claim + batch ack, {CONSUMERS} consumers, store (bare batch claim + "
                   "batch UPDATE: baseline)", batched, "actions/s", batches, batched / batches,
                   "value >= 0"),
            Result(f"feed claim + ack, {CONSUMERS} consumers, HTTP API + client", http,
                   "actions/s", None, None, "value >= 0"),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
