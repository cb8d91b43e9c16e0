"""Decide on an event loop: the same transaction as `Decider.decide`, on asyncpg.

The API answers `POST /v1/decide` on PostgreSQL here when the placement's policy ranks
without I/O (`Decider.inline`): no worker thread, no SQLAlchemy, the driver the raw floor
of bench/decide.py uses. What is decided is `Decider.decide`'s exactly: the same first and
second halves (`Decider.ask`, `Decider.conclude`), the same statements in numbered style
(copilot.placements.store), the same audit append (the trail's `append_call`). In one
transaction: BEGIN with the subject's decide lock (one message), the state read (after
the lock, in its own statement, so its snapshot sees every decide that held the lock
before), the row and its audit entry in one statement, COMMIT: four round trips.

`transact(body, begin)` runs a body in a transaction that `begin` opens
(copilot.api.reads.Connections.transact): the caller owns the connections.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from audit import Actor
from copilot.placements import store
from copilot.placements.decide import Decider
from copilot.placements.records import Decision

Transact = Callable[
    [Callable[[asyncpg.Connection], Awaitable[Decision]], str], Awaitable[Decision]
]


async def decide(
    decider: Decider, transact: Transact, tenant: str, placement_name: str, subject_id: str,
    context: Mapping[str, Any] | None = None, *, actor: Actor | None = None,
    from_client: bool = False,
) -> Decision:  # fmt: skip
    """`decider.decide(...)` with its transaction run by `transact` (see the module)."""
    ask = decider.ask(tenant, placement_name, subject_id, context, actor=actor,
                      from_client=from_client)  # fmt: skip

    async def body(conn: asyncpg.Connection) -> Decision:
        rows = await conn.fetch(store.STATE_NUM, *store.state_args(
            tenant, subject_id, ask.placement.signal_names, ask.now, ask.pause))  # fmt: skip
        state, paused = store.state_of(tenant, subject_id, rows)
        row, event, decision = decider.conclude(ask, state, paused)
        sql, args = store.write_num(row, decider.audit.append_call(tenant, [event]))
        await conn.fetch(sql, *args)
        return decision

    return await transact(body, store.begin_locked(tenant, subject_id))


__all__ = ["decide"]
