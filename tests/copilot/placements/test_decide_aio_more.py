"""More of the asyncio decide on PostgreSQL, checked in review: the chain stays verifiable
with both paths racing across subjects, erasure redacts what the loop wrote, and a decide
whose backend is cancelled or killed after BEGIN (inside its state read) writes nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest

from audit import Actor, Query
from copilot.api.reads import connections
from copilot.erasure import erase_subject
from copilot.placements import aio
from copilot.placements.store import lock_args
from copilot.runtime import Runtime
from tests.support.decides import dsn, written


def test_both_paths_racing_across_subjects_keep_the_chain_verifiable(pg: Runtime, sid: str) -> None:
    subjects = [f"{sid}-{i}" for i in range(6)]
    shown: dict[str, list[bool]] = {s: [] for s in subjects}
    errors: list[BaseException] = []
    start = threading.Barrier(13)

    def threaded(s: str) -> None:
        start.wait()
        try:
            for _ in range(4):
                shown[s].append(pg.decider.decide("acme", "t.daily", s).item is not None)
        except BaseException as exc:
            errors.append(exc)

    async def looped() -> None:
        conns = connections(pg.engine, "test-aio-race", 8)
        assert conns is not None
        start.wait()

        async def four(s: str) -> None:
            for _ in range(4):
                d = await aio.decide(pg.decider, conns.transact, "acme", "t.daily", s)
                shown[s].append(d.item is not None)

        try:
            got = await asyncio.gather(
                *(four(s) for s in subjects for _ in range(2)), return_exceptions=True
            )
        finally:
            await conns.close()
        errors.extend(g for g in got if isinstance(g, BaseException))

    threads = [threading.Thread(target=threaded, args=(s,)) for s in subjects for _ in range(2)]
    for t in threads:
        t.start()
    asyncio.run(looped())
    for t in threads:
        t.join()
    assert errors == []
    assert {s: (len(v), sum(v)) for s, v in shown.items()} == {s: (16, 3) for s in subjects}
    pg.audit.settle("acme")
    assert pg.trail.verify("acme").ok


def test_erasure_redacts_what_the_loop_decided(pg: Runtime, sid: str) -> None:
    async def run() -> None:
        conns = connections(pg.engine, "test-aio-erase", 1)
        assert conns is not None
        try:
            for _ in range(2):
                await aio.decide(pg.decider, conns.transact, "acme", "t.steps", sid,
                                 {"t.level": 1, "t.flag": True})  # fmt: skip
        finally:
            await conns.close()

    asyncio.run(run())
    pg.audit.settle("acme")
    counts = erase_subject(pg, "acme", sid, actor=Actor.system("test"))
    assert counts["placement_decisions"] == 2
    with pg.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT features, segment, explanation FROM placement_decisions "
            "WHERE subject_id = %s", (sid,)
        ).fetchall()  # fmt: skip
    assert [tuple(r) for r in rows] == [('{"erased": true}', None, "")] * 2
    entries = pg.audit.query(
        "acme", Query(event_type="placement.decided", subject_id=sid, with_personal=True)
    )
    assert len(entries) == 2 and all(not e.personal for e in entries)
    assert pg.trail.verify("acme").ok


@pytest.mark.parametrize("how", ["pg_cancel_backend", "pg_terminate_backend"])
def test_a_decide_stopped_inside_its_state_read_answers_503_and_writes_nothing(
    api: Any, pg: Runtime, sid: str, how: str
) -> None:
    """After BEGIN and the subject's lock: the state read waits for a table lock held by
    another session, and its backend is cancelled or terminated there."""
    client, auth = api

    def decide(s: str) -> Any:
        return client.post(
            "/v1/decide", headers=auth, json={"placement": "t.daily", "subject_id": s}
        )

    assert decide(f"{sid}-warm").status_code == 200
    got: list[Any] = []
    with pg.engine.connect() as conn:
        path = conn.exec_driver_sql("SHOW search_path").scalar_one()
    with (
        psycopg.connect(dsn(pg)) as holder,
        psycopg.connect(dsn(pg), autocommit=True) as admin,
    ):
        holder.execute(f"SET search_path = {path}")
        holder.execute("LOCK TABLE placement_events IN ACCESS EXCLUSIVE MODE")
        t = threading.Thread(target=lambda: got.append(decide(sid)))
        t.start()
        pid = None
        deadline = time.monotonic() + 30
        while pid is None and t.is_alive() and time.monotonic() < deadline:
            row = admin.execute(  # the backend holding this subject's lock, waiting
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s "
                "AND l.objid = (hashtext(%s)::bigint & 4294967295)::oid AND a.wait_event_type = 'Lock'",
                lock_args("acme", sid),
            ).fetchone()
            pid = row[0] if row else None
        assert pid is not None, got
        admin.execute(f"SELECT {how}(%s)", (pid,))
        t.join()
        holder.rollback()
    assert got[0].status_code == 503, got[0].text
    assert got[0].json()["error"]["code"] == "service.unavailable"
    assert written(pg, sid) == 0
    # and the subject is free again, its caps intact
    assert [decide(sid).json()["item"] is not None for _ in range(4)] == [True, True, True, False]
