"""On PostgreSQL an acknowledged append is flushed to the WAL before `append` returns."""

from __future__ import annotations

from sqlalchemy import text

from audit import Actor, AuditEvent, SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade


def test_an_acknowledged_append_is_in_the_flushed_wal(pg_url: str) -> None:
    engine = create_engine(pg_url)
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
