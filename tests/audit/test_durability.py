"""On PostgreSQL an acknowledged append is flushed to the WAL before `append` returns.

On a cluster of the test's own (tests.support.faults.own_pg): the check compares the
server-wide WAL insert and flush positions, which other sessions' asynchronous commits on
a shared server would move.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from audit import Actor, AuditEvent, SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade
from tests.support.faults import own_pg

__all__ = ["own_pg"]  # the fixture


def test_an_acknowledged_append_is_in_the_flushed_wal(own_pg: Any) -> None:
    db = "durability_" + uuid.uuid4().hex[:8]
    own_pg.sql(f"CREATE DATABASE {db}")
    engine = create_engine(own_pg.url.rsplit("/", 1)[0] + f"/{db}")
    upgrade(engine)
    store = SqlAuditStore(engine)
    try:
        for i in range(20):
            result = store.append(
                "acme", [AuditEvent(event_type="x", actor=Actor.system(), data={"i": i})]
            )
            assert (
                result[0].seq == i + 1
            )  # chained inline, committed synchronously in the same call
            with engine.connect() as conn:
                # Everything written before the append returned is durable: the flush
                # position is within a background record or two of the insert position.
                # Left to the WAL writer, the append's own records (~0.5 kB) would not be.
                unflushed = conn.execute(
                    text(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn())"
                    )
                ).scalar()
                assert unflushed < 200, (
                    f"{unflushed} bytes of WAL not flushed after append returned"
                )
    finally:
        engine.dispose()
        own_pg.sql(f"DROP DATABASE {db} WITH (FORCE)")
