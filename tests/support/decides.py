"""Helpers for the decide tests on PostgreSQL (tests/copilot/placements): the runtime's
libpq DSN, what a decide left open on the server, the rows a subject has, a decide over HTTP."""

from __future__ import annotations

from typing import Any

import psycopg

from copilot.placements.store import lock_args
from copilot.runtime import Runtime


def dsn(rt: Runtime) -> str:
    """The runtime's database as a libpq DSN (its schema's search_path included)."""
    return rt.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def left_open(rt: Runtime, sid: str) -> list[Any]:
    """The subject's decide lock still held, and decide sessions idle in a transaction."""
    with psycopg.connect(dsn(rt), autocommit=True) as admin:
        locks = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = hashtext(%s)::oid",
            lock_args("acme", sid),
        ).fetchall()
        idle = admin.execute(  # a decide's own statements only: other sessions share the server
            "SELECT pid, query FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%' "
            "AND datname = current_database() AND (query LIKE '%%pg_advisory_xact_lock%%' "
            "OR query LIKE '%%subject_preferences%%' OR query LIKE '%%audit_append%%' "
            "OR query LIKE '%%INSERT INTO placement_decisions%%')"
        ).fetchall()
    return [*locks, *idle]


def written(rt: Runtime, sid: str) -> int:
    """How many decisions the subject has."""
    with rt.engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM placement_decisions WHERE subject_id = %s", (sid,)
        ).scalar_one())  # fmt: skip


def post_decide(api: Any, sid: str, placement: str = "t.daily") -> Any:
    """`POST /v1/decide` with the `api` fixture's (client, app-key headers)."""
    client, auth = api
    return client.post("/v1/decide", json={"placement": placement, "subject_id": sid}, headers=auth)
