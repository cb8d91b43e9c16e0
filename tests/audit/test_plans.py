"""The server functions' plans stay on the indexes however stale the table's statistics are.

PL/pgSQL caches a plan per statement per session. Made while `audit_entries` held a page,
the head read (`ORDER BY seq DESC LIMIT 1`) was a sequential scan and a sort, and nothing
replaced it until an ANALYZE: every append of a long-lived connection then read the whole
stream (migration 0019_index_plans). Here the statistics are taken on a near-empty table,
as a server with autovacuum off or behind leaves them, and the stream is grown past them
on the same connection; the append must still touch a handful of pages, not the stream's.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator

import psycopg
import pytest

from audit import Actor, AuditEvent, SqlAuditStore
from audit.chain import seal
from audit.db import create_engine
from audit.stores.sql.postgres import APPEND_ONE_SQL, _one_params
from copilot.db.engines import upgrade
from tests.support.services import PG_DSN

STREAM = "acme"
plans = importlib.import_module("copilot.db.migrations.versions.0019_index_plans")


@pytest.fixture
def session(pg_schema: str, pg_url: str) -> Iterator[tuple[psycopg.Connection, SqlAuditStore]]:
    """A migrated schema's store, and one long-lived connection on it (a worker's, say)."""
    engine = create_engine(pg_url)
    upgrade(engine)
    try:
        with psycopg.connect(PG_DSN, autocommit=True, options=f"-csearch_path={pg_schema}") as conn:
            yield conn, SqlAuditStore(engine)
    finally:
        engine.dispose()


def _event(i: int) -> AuditEvent:
    return AuditEvent(event_type="placement.decided", actor=Actor.system("t"),
                      subject_id=f"acct-{i}", data={"i": i})  # fmt: skip


def _append(conn: psycopg.Connection, i: int, *, explain: bool = False) -> int:
    """Append one event in the session's own transaction; with `explain`, the pages read."""
    params = _one_params(STREAM, seal(_event(i)), "try")
    prefix = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " if explain else ""
    with conn.transaction():
        rows = conn.execute(prefix + APPEND_ONE_SQL, params, prepare=not explain).fetchall()
    if not explain:
        return 0
    plan = rows[0][0]
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


def test_an_append_on_a_long_lived_connection_reads_pages_not_the_stream(
    session: tuple[psycopg.Connection, SqlAuditStore],
) -> None:
    conn, store = session
    conn.execute("ANALYZE audit_entries, audit_pending, audit_payloads")  # near-empty: never refreshed below
    for i in range(8):  # past PL/pgSQL's five custom plans: the session's plans are cached
        _append(conn, i)
    early = _append(conn, 8, explain=True)
    store.append(STREAM, [_event(100 + i) for i in range(10_000)])
    late = _append(conn, 9, explain=True)
    pages = conn.execute(
        "SELECT pg_relation_size('audit_entries') / current_setting('block_size')::int"
    ).fetchone()
    assert pages is not None and pages[0] > 300  # the stream outgrew its statistics
    # Index descents of a few levels for the head, the queue and the insert's indexes;
    # a scan of the stream would read every one of its pages.
    assert late <= early + 40, (early, late, pages[0])
    assert late < pages[0] / 8, (late, pages[0])


def test_the_planner_settings_are_on_every_hot_function(
    session: tuple[psycopg.Connection, SqlAuditStore],
) -> None:
    found = dict(session[0].execute(
        "SELECT proname, proconfig FROM pg_proc WHERE proname = ANY(%s) "
        "AND pronamespace = current_schema()::regnamespace", (list(plans.FUNCTIONS),)
    ).fetchall())  # fmt: skip
    assert set(found) == set(plans.FUNCTIONS)
    for name, config in found.items():
        assert {f"{s}=off" for s in plans.SETTINGS} <= set(config or ()), name


def test_an_asynchronous_commit_set_inside_a_function_outlives_its_call(
    session: tuple[psycopg.Connection, SqlAuditStore],
) -> None:
    conn = session[0]
    # A function's SET clause restores only its own settings at exit: the
    # `synchronous_commit = off` that `try_async` sets must hold until the commit.
    params = _one_params(STREAM, seal(_event(0)), "try_async")
    with conn.transaction():
        conn.execute(APPEND_ONE_SQL, params).fetchall()
        inside = conn.execute("SHOW synchronous_commit").fetchone()
    after = conn.execute("SHOW synchronous_commit").fetchone()
    assert inside == ("off",) and after == ("on",)
