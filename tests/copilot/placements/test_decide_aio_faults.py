"""The asyncio decide's faults that test_decide_aio.py does not cover (review).

A database that refuses the decide's connection, or answers with an error psycopg raises
as OperationalError, must answer 503 `service.unavailable` on the event loop as it does on
the threaded path (psycopg raises every failed connect as OperationalError). And the kept
connections, once closed with the app, must not open new ones for decides still queued.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import psycopg
import pytest
from sqlalchemy import create_engine

from copilot.api.reads import connections
from copilot.api.routes.placements import _unavailable
from copilot.placements import aio
from copilot.placements._sql import LOCK_CLASS
from copilot.placements.store import lock_args
from copilot.runtime import Runtime
from tests.support.decides import dsn


def _asyncpg_errors() -> list[type[asyncpg.PostgresError]]:
    found = []
    for name in dir(asyncpg.exceptions):
        cls = getattr(asyncpg.exceptions, name)
        if (isinstance(cls, type) and issubclass(cls, asyncpg.PostgresError)
                and len(getattr(cls, "sqlstate", "") or "") == 5):  # fmt: skip
            found.append(cls)
    return found


def test_every_sqlstate_psycopg_raises_as_operational_error_is_unavailable() -> None:
    """The threaded decide answers 503 for psycopg's OperationalError (the app's handler);
    the loop's decide must classify every SQLSTATE the same way."""
    differ = []
    for cls in _asyncpg_errors():
        try:
            threaded = issubclass(psycopg.errors.lookup(cls.sqlstate), psycopg.OperationalError)
        except KeyError:
            continue
        if _unavailable(cls()) != threaded:
            differ.append((cls.sqlstate, cls.__name__, threaded))
    assert differ == []


@pytest.mark.parametrize("part", ["username", "database"])
def test_a_server_that_refuses_the_connection_answers_503(
    api: Any, pg: Runtime, sid: str, part: str
) -> None:
    """A role or database the server does not know (a rotated password, a renamed
    database): psycopg raises OperationalError, the threaded decide answers 503."""
    client, auth = api
    state = client.app.state
    kept = state.decide_connections
    url = pg.engine.url
    refused = create_engine(
        url.set(username="no_such_r4") if part == "username" else url.set(database="no_such_r4")
    )
    state.decide_connections = connections(refused, "test-refused", 2)
    try:
        answer = client.post("/v1/decide", headers=auth,
                             json={"placement": "t.daily", "subject_id": sid})  # fmt: skip
    finally:
        state.decide_connections = kept
        refused.dispose()
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "service.unavailable"


def test_decides_queued_when_the_connections_close_open_none(pg: Runtime, sid: str) -> None:
    """The app's lifespan closes the kept connections: a decide still waiting for a slot
    then opens no connection that nothing would ever close (it answers 503 instead)."""

    async def run() -> tuple[BaseException | Any, int]:
        conns = connections(pg.engine, "test-closing", 1)
        assert conns is not None
        first = asyncio.ensure_future(
            aio.decide(pg.decider, conns.transact, "acme", "t.daily", sid)
        )
        await asyncio.sleep(0.3)  # waiting for the subject's lock, on the one slot
        queued = asyncio.ensure_future(
            aio.decide(pg.decider, conns.transact, "acme", "t.daily", f"{sid}-q")
        )
        await asyncio.sleep(0.1)  # waiting for the slot
        await conns.close()
        await asyncio.gather(first, return_exceptions=True)
        (got,) = await asyncio.gather(queued, return_exceptions=True)
        left = len(conns._open) + len(conns._idle)
        for conn in list(conns._open):
            conn.terminate()
        return got, left

    with psycopg.connect(dsn(pg), autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", lock_args("acme", sid))
        got, left = asyncio.run(run())
        holder.execute("ROLLBACK")
    assert left == 0
    assert isinstance(got, BaseException) and _unavailable(got), got


def test_a_decide_waits_for_the_previous_releases_lock_on_the_subject(
    pg: Runtime, sid: str
) -> None:
    """A decide of the release before (SELECT pg_advisory_xact_lock(LOCK_CLASS,
    hashtext(tenant || x'1f' || subject))) holds the subject: this release's decide waits."""

    async def run() -> bool:
        conns = connections(pg.engine, "test-old-lock", 1)
        assert conns is not None
        try:
            await asyncio.wait_for(
                aio.decide(pg.decider, conns.transact, "acme", "t.daily", sid), 1.0
            )
            return False  # decided while the old release's decide held the subject
        except TimeoutError:
            return True  # waited for it
        finally:
            await conns.close()

    with psycopg.connect(dsn(pg), autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, f"acme\x1f{sid}")
        )
        waited = asyncio.run(run())
        holder.execute("ROLLBACK")
    assert waited
