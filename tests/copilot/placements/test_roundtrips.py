"""A decide's round trips, pinned (tests/support/roundtrips.py counts them on the wire).

PostgreSQL: three. The subject's lock and the reads go in one pipeline (each statement
still takes its snapshot after the one before it finished, so the reads see every decide
the lock waited for); the decision row and its audit entry in a second; then COMMIT.
It was six (BEGIN, lock, reads, row, audit entry, COMMIT as separate round trips).
SQLite (statements, in process): BEGIN IMMEDIATE, the reads, the row, the audit head, its
entry and its (erasable) payload, COMMIT: seven, as before. A guarded placement's pause is one more arm of the reads' UNION: the
same count.
"""

from __future__ import annotations

from copilot.runtime import Runtime
from tests.support.roundtrips import counting


def test_a_decide_costs_its_pinned_round_trips(rt: Runtime, sid: str) -> None:
    for i in range(6):  # warm up: the statements prepared on the pooled connection
        rt.decider.decide("acme", "t.daily", f"{sid}-{i}")
    with counting() as trips:
        decision = rt.decider.decide("acme", "t.daily", sid)
    assert decision.item is not None
    expected = 3 if rt.engine.dialect.name == "postgresql" else 7
    assert trips.count == expected, str(trips)
