"""A standalone append's round trips, pinned (tests/support/roundtrips.py counts them).

PostgreSQL: the append and its flush are pipelined, one round trip (two transactions:
the chain lock is never held across the WAL flush). SQLite: BEGIN IMMEDIATE, the head,
the insert, COMMIT.
"""

from __future__ import annotations

from audit import Actor, AuditEvent, SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade
from tests.support.roundtrips import counting


def test_a_standalone_append_costs_its_pinned_round_trips(db_url: str) -> None:
    engine = create_engine(db_url)
    upgrade(engine)
    store = SqlAuditStore(engine)
    try:
        for i in range(6):  # warm up: the statements prepared on the pooled connection
            store.append("acme", [AuditEvent(event_type="x", actor=Actor.system(), data={"i": i})])
        with counting() as trips:
            result = store.append("acme", [AuditEvent(event_type="y", actor=Actor.system())])
        expected = 1 if db_url.startswith("postgresql") else 4
        assert result[0].seq == 7 or result[0].pending
        assert trips.count == expected, str(trips)
    finally:
        engine.dispose()
