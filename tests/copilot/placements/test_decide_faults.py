"""The pipelined decide on PostgreSQL after a fault inside its transaction.

Each test makes the decide fail after BEGIN (its backend cancelled or killed while it waits
for the subject's lock, held by another session), then checks that nothing stayed open: no
advisory lock held, no session idle in transaction, and the next decides on the pool work.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from copilot.placements.store import lock_args
from copilot.runtime import Runtime
from tests.support.decides import dsn, left_open

WAITING = (
    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND query LIKE '%%pg_advisory_xact_lock%%' AND pid <> pg_backend_pid()"
)


def _fail_while_waiting(rt: Runtime, sid: str, how: str) -> BaseException | None:
    got: list[BaseException | None] = []

    def decide() -> None:
        try:
            rt.decider.decide("acme", "t.daily", sid)
            got.append(None)
        except BaseException as exc:
            got.append(exc)

    with (
        psycopg.connect(dsn(rt), autocommit=True) as holder,
        psycopg.connect(dsn(rt), autocommit=True) as admin,
    ):
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", lock_args("acme", sid))
        t = threading.Thread(target=decide)
        t.start()
        pid = None
        while pid is None and t.is_alive():
            row = admin.execute(WAITING).fetchone()
            pid = row[0] if row else None
        assert pid is not None, got
        admin.execute(f"SELECT {how}(%s)", (pid,))
        t.join()
        holder.execute("ROLLBACK")
    return got[0]


@pytest.mark.parametrize("how", ["pg_cancel_backend", "pg_terminate_backend"])
def test_a_decide_that_fails_after_begin_leaves_nothing_open(
    rt: Runtime, sid: str, how: str
) -> None:
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("the pipelined transaction is PostgreSQL's")
    rt.engine.dispose()  # fresh pooled connections: nothing prepared on them yet
    exc = _fail_while_waiting(rt, sid, how)
    assert exc is not None  # the decide failed: cancelled or its connection gone
    assert left_open(rt, sid) == []
    # And the pool goes on serving decides for the subject, caps intact
    for i in range(5):
        d = rt.decider.decide("acme", "t.daily", sid)
        assert (d.item is not None) == (i < 3), (i, d.why)
    assert left_open(rt, sid) == []


def test_a_decide_cancelled_on_a_warm_connection_leaves_it_usable(rt: Runtime, sid: str) -> None:
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("the pipelined transaction is PostgreSQL's")
    for i in range(8):  # warm: every statement prepared on the pooled connection
        rt.decider.decide("acme", "t.daily", f"{sid}-w{i}")
    exc = _fail_while_waiting(rt, sid, "pg_cancel_backend")
    assert exc is not None
    for i in range(5):
        d = rt.decider.decide("acme", "t.daily", sid)
        assert (d.item is not None) == (i < 3), (i, d.why)
    assert left_open(rt, sid) == []
