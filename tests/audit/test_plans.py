"""The server functions' plans stay on the right indexes however stale the statistics are.

A PL/pgSQL statement's plan is kept per session. Made while `audit_entries` held a page,
the head read (`ORDER BY seq DESC LIMIT 1`) was a sequential scan and a sort, and every
append of a long-lived connection then read the whole stream (migration
0019_index_plans). Here the statistics are taken on near-empty tables, as a server with
autovacuum off or behind leaves them, and the connection asks for generic plans from the
first call, as the API's decide connections do; the tables are grown past the statistics,
and one append (or keyed trigger) on that connection must still read a handful of pages,
not the table's.
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import psycopg
import pytest

from audit import Actor, AuditEvent, SqlAuditStore
from audit.chain import seal
from audit.db import create_engine
from audit.stores.sql.postgres import APPEND_ONE_SQL, _one_params
from copilot.db.engines import upgrade
from copilot.engine.fastpath import create_call
from tests.support.services import PG_DSN

plans = importlib.import_module("copilot.db.migrations.versions.0019_index_plans")
batched = importlib.import_module("copilot.db.migrations.versions.0020_batched_steps")
# Each hot function's settings at the head: 0020 defines copilot_steps and redefines
# copilot_create (its keyed lookups planned at each call by EXECUTE, not the whole call).
SETTINGS = {**plans.FUNCTIONS, **batched.FUNCTIONS}
GROWN = 10_000


@pytest.fixture
def stream() -> str:
    """A stream of this test's own: chain locks are database-wide, and other tests' are not."""
    return "plans-" + uuid.uuid4().hex[:8]


class Session(NamedTuple):
    conn: psycopg.Connection
    store: SqlAuditStore


@pytest.fixture
def migrated(pg_url: str) -> Iterator[SqlAuditStore]:
    engine = create_engine(pg_url)
    upgrade(engine)
    yield SqlAuditStore(engine)
    engine.dispose()


@pytest.fixture
def plain(pg_schema: str, migrated: SqlAuditStore) -> Iterator[psycopg.Connection]:
    """A connection on the migrated schema."""
    with psycopg.connect(PG_DSN, autocommit=True, options=f"-csearch_path={pg_schema}") as conn:
        yield conn


@pytest.fixture(params=["empty", "foreign", "own"])
def session(
    request: pytest.FixtureRequest, pg_schema: str, migrated: SqlAuditStore, stream: str
) -> Iterator[Session]:
    """A migrated schema's store, and one long-lived connection on it that plans generically.
    Its statistics: of empty tables; of a trail that held another stream's few entries; or
    this stream's first few (a tenant's first key, say), as a bench that analyzes after
    seeding leaves them."""
    if request.param != "empty":
        first = stream if request.param == "own" else "other-" + uuid.uuid4().hex[:8]
        migrated.append(first, [_event(i) for i in range(3)])
    options = f"-csearch_path={pg_schema} -cplan_cache_mode=force_generic_plan"
    with psycopg.connect(PG_DSN, autocommit=True, options=options) as conn:
        conn.execute("ANALYZE audit_entries, audit_pending, audit_payloads, runs")
        yield Session(conn, migrated)


def _event(i: int, key: str | None = None) -> AuditEvent:
    return AuditEvent(event_type="placement.decided", actor=Actor.system("t"),
                      subject_id=f"acct-{i}", data={"i": i}, idempotency_key=key)  # fmt: skip


_FETCHED = (
    "SELECT coalesce(sum(pg_stat_get_xact_blocks_fetched(oid)), 0) FROM pg_class WHERE oid = "
    "%(t)s::regclass OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = %(t)s::regclass)"
)


def _pages(conn: psycopg.Connection, sql: str, params: dict[str, Any], table: str) -> int:
    """Run `sql` in a transaction of its own; the pages of `table` and its indexes it read,
    its nested statements' included. (Catalog pages, which another session's DDL makes a
    backend reread, are not counted; the counters may hold earlier transactions' fetches
    not yet reported, so the difference across the call is taken, inside one transaction.)"""
    with conn.transaction():
        before = conn.execute(_FETCHED, {"t": table}).fetchone()
        conn.execute(sql, params).fetchall()
        after = conn.execute(_FETCHED, {"t": table}).fetchone()
    assert before is not None and after is not None
    return int(after[0]) - int(before[0])


def _size(conn: psycopg.Connection, table: str) -> int:
    found = conn.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", (table,)
    ).fetchone()
    assert found is not None
    return int(found[0])


def test_an_append_on_a_long_lived_connection_reads_pages_not_the_stream(
    session: Session, stream: str
) -> None:
    conn, store = session.conn, session.store

    def append(i: int, *, key: str | None = None) -> int:
        params = _one_params(stream, seal(_event(i, key)), "wait")
        return _pages(conn, APPEND_ONE_SQL, params, "audit_entries")

    for i in range(8):  # the session's plans, made on the near-empty trail
        append(i, key=f"k{i}" if i % 2 else None)
    early = append(8)
    store.append(stream, [_event(100 + i, f"bulk-{i}") for i in range(GROWN)])
    pages = _size(conn, "audit_entries")
    assert pages > 300  # the stream outgrew its statistics
    late = append(9)
    # Index descents of a few levels for the head, the queue and the insert's
    # indexes; a scan of the stream (or a sort of it) reads every one of its pages.
    assert late < pages / 4, (early, late, pages)


def test_a_keyed_trigger_on_a_long_lived_connection_reads_pages_not_the_runs(
    session: Session, stream: str
) -> None:
    conn = session.conn

    def create(i: int) -> int:
        row = {"id": uuid.uuid4().hex, "tenant": stream, "workflow": "w", "version": "1",
               "subject_id": f"acct-{i}", "inputs": "{}", "idempotency_key": f"key-{i}",
               "triggered_by": "t", "principal": None, "created_at": time.time(),
               "holdout": False}  # fmt: skip
        return _pages(conn, *create_call(row, seal(_event(i)), consult=False), "runs")

    for i in range(8):
        create(i)
    conn.execute(
        "INSERT INTO runs (id, tenant, workflow, version, subject_id, state, inputs, "
        "idempotency_key, triggered_by, created_at, updated_at, queued_at, attempts, "
        "step_index, holdout) SELECT md5(i::text), %s, 'w', '1', 'acct-' || i, 'queued', '{}', "
        "'bulk-' || i, 't', 0, 0, 0, 0, 0, false FROM generate_series(1, %s) AS i",
        (stream, 5 * GROWN),
    )  # fmt: skip
    pages = _size(conn, "runs")
    assert pages > 300
    late = create(9)
    assert late < pages / 4, (late, pages)


def test_the_settings_are_on_every_hot_function(plain: psycopg.Connection) -> None:
    found = dict(plain.execute(
        "SELECT proname, proconfig FROM pg_proc WHERE proname = ANY(%s) "
        "AND pronamespace = current_schema()::regnamespace", (list(SETTINGS),)
    ).fetchall())  # fmt: skip
    assert set(found) == set(SETTINGS)
    for name, config in found.items():
        # Exactly these: a function that forced custom plans would replan what it calls too.
        assert {f"{k}={v}" for k, v in SETTINGS[name].items()} == set(config or ()), name


def test_an_asynchronous_commit_set_inside_a_function_outlives_its_call(
    plain: psycopg.Connection, stream: str
) -> None:
    # A function's SET clause restores only the settings it names at exit: the
    # `synchronous_commit = off` that `try_async` sets must hold until the commit.
    conn = plain
    before = conn.execute("SHOW synchronous_commit").fetchone()
    params = _one_params(stream, seal(_event(0)), "try_async")
    with conn.transaction():
        assert conn.execute(APPEND_ONE_SQL, params).fetchall()[0][2] == "chained"
        inside = conn.execute("SHOW synchronous_commit").fetchone()
        sort = conn.execute("SHOW enable_sort").fetchone()
    after = conn.execute("SHOW synchronous_commit").fetchone()
    assert inside == ("off",) and after == before and sort == ("on",)
