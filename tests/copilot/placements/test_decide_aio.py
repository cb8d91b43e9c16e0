"""The API's asyncio decide on PostgreSQL (copilot.placements.aio on asyncpg).

It must be `Decider.decide` in every way but the driver: the same subject lock (the caps
hold when both paths decide for one subject at once), the same rows and audit entries
(tests/copilot/placements/test_hot_decide.py compares every answer with the threaded
route's), four round trips, and after a fault nothing left open and the kept connections
still serving.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from audit import Actor, Query
from copilot.api.placement_schema import DecisionOut
from copilot.api.reads import Connections, connections
from copilot.placements import aio
from copilot.placements.store import lock_args
from copilot.runtime import Runtime
from tests.support.decides import dsn, left_open, post_decide, written


def _loop(api: Any) -> Connections:
    conns = api[0].app.state.decide_connections
    assert isinstance(conns, Connections)
    return conns


def test_the_api_decides_on_the_loop_not_on_a_thread(
    api: Any, pg: Runtime, sid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def threaded(*_: Any, **__: Any) -> Any:
        raise AssertionError("the threaded decide ran")

    monkeypatch.setattr(pg.decider, "decide", threaded)
    shown = [post_decide(api, sid).json() for _ in range(4)]
    assert [d["item"] is not None for d in shown] == [True, True, True, False]  # the daily cap
    assert shown[3]["why"].startswith("cap:per_day")
    assert _loop(api)._open  # on the app's kept asyncpg connections
    with pg.engine.connect() as conn:  # the rows, and their entries on a verifiable trail
        rows = conn.exec_driver_sql(
            "SELECT id, chosen, counted FROM placement_decisions WHERE subject_id = %s "
            "ORDER BY decided_at", (sid,)
        ).fetchall()  # fmt: skip
    assert [r[0] for r in rows] == [d["decision_id"] for d in shown]
    assert [r[2] for r in rows] == [True, True, True, False]
    pg.audit.settle("acme")
    entries = pg.audit.query("acme", Query(event_type="placement.decided", subject_id=sid))
    assert [e.data["decision_id"] for e in entries] == [d["decision_id"] for d in shown]
    assert pg.trail.verify("acme").ok


def test_a_policy_that_may_block_is_decided_on_a_thread(
    api: Any, pg: Runtime, sid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = pg.placements.policies.get("rules")
    assert pg.decider.inline("t.daily")

    class Blocking:  # no `inline`: a policy that may do I/O (a learned one reads its version)
        name, version = "rules", "1"

        def choose(self, request: Any, draw: float) -> Any:
            return rules.choose(request, draw)

    threaded: list[str] = []
    decide = pg.decider.decide

    def spy(*args: Any, **kwargs: Any) -> Any:
        threaded.append(threading.current_thread().name)
        return decide(*args, **kwargs)

    monkeypatch.setattr(pg.decider, "decide", spy)
    pg.placements.policies.register(Blocking())
    try:
        assert not pg.decider.inline("t.daily")
        assert post_decide(api, sid).json()["item"] is not None
    finally:
        pg.placements.policies.register(rules)
    assert len(threaded) == 1 and threaded[0] != threading.main_thread().name


def test_both_paths_share_the_lock_so_caps_hold_under_concurrency(pg: Runtime, sid: str) -> None:
    """Ten decides on threads (`Decider.decide`) and ten on one event loop (each on its own
    kept connection), all for one subject at once: exactly the daily cap of three shown."""
    items: list[bool] = []
    errors: list[BaseException] = []
    start = threading.Barrier(11)

    def threaded() -> None:
        start.wait()
        try:
            items.append(pg.decider.decide("acme", "t.daily", sid).item is not None)
        except BaseException as exc:
            errors.append(exc)

    async def looped() -> None:
        conns = connections(pg.engine, "test-aio", 10)
        assert conns is not None
        start.wait()
        try:
            got = await asyncio.gather(
                *(
                    aio.decide(pg.decider, conns.transact, "acme", "t.daily", sid)
                    for _ in range(10)
                ),
                return_exceptions=True,
            )
        finally:
            await conns.close()
        for d in got:
            if isinstance(d, BaseException):
                errors.append(d)
            else:
                items.append(d.item is not None)

    threads = [threading.Thread(target=threaded) for _ in range(10)]
    for t in threads:
        t.start()
    asyncio.run(looped())
    for t in threads:
        t.join()
    assert errors == []
    assert len(items) == 20 and sum(items) == 3


def test_a_decide_is_four_round_trips(pg: Runtime, sid: str) -> None:
    sent: list[str] = []

    class Counting:
        def __init__(self, conn: Any) -> None:
            self.conn = conn

        async def execute(self, sql: str, *args: Any) -> Any:
            sent.append(sql.split()[0])
            return await self.conn.execute(sql, *args)

        async def fetch(self, sql: str, *args: Any) -> Any:
            sent.append(sql.split()[0])
            return await self.conn.fetch(sql, *args)

    async def run() -> None:
        conns = connections(pg.engine, "test-aio", 2)
        assert conns is not None

        async def transact(body: Any, begin: str) -> Any:
            async def counted(conn: Any) -> Any:
                return await body(Counting(conn))

            sent.append(begin.split()[0])
            return await conns.transact(counted, begin)

        try:
            await aio.decide(pg.decider, transact, "acme", "t.daily", sid)
        finally:
            await conns.close()

    asyncio.run(run())
    # BEGIN with the lock; the state read; the row with its audit entry; COMMIT (transact's)
    assert sent == ["BEGIN;", "SELECT", "WITH"]


# The backend waiting for this subject's lock, and only it: WAITING (any backend on the
# server waiting for an advisory lock) may pick another test run's decide on a shared server.
_WAITING_FOR = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND classid = %s AND objid = (hashtext(%s)::bigint & 4294967295)::oid AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _fault_while_waiting(api: Any, pg: Runtime, sid: str, how: str) -> Any:
    """The decide waits for the subject's lock, held by another session; its backend is
    cancelled or terminated there; then the holder lets go."""
    got: list[Any] = []
    with (
        psycopg.connect(dsn(pg), autocommit=True) as holder,
        psycopg.connect(dsn(pg), autocommit=True) as admin,
    ):
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", lock_args("acme", sid))
        t = threading.Thread(target=lambda: got.append(post_decide(api, sid)))
        t.start()
        pid = None
        deadline = time.monotonic() + 30
        while pid is None and t.is_alive() and time.monotonic() < deadline:
            row = admin.execute(_WAITING_FOR, lock_args("acme", sid)).fetchone()
            pid = row[0] if row else None
        assert pid is not None, got
        admin.execute(f"SELECT {how}(%s)", (pid,))
        holder.execute("ROLLBACK")
        t.join()
    return got[0]


def test_a_cancelled_decide_answers_503_writes_nothing_and_leaves_nothing_open(
    api: Any, pg: Runtime, sid: str
) -> None:
    post_decide(api, f"{sid}-warm")  # a kept connection, warm
    answer = _fault_while_waiting(api, pg, sid, "pg_cancel_backend")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "service.unavailable"
    assert left_open(pg, sid) == [] and written(pg, sid) == 0
    # And the kept connections go on serving decides for the subject, caps intact
    assert [post_decide(api, sid).json()["item"] is not None for _ in range(5)] == [
        True, True, True, False, False
    ]  # fmt: skip
    assert left_open(pg, sid) == []


def test_a_decide_whose_backend_is_terminated_before_it_wrote_is_retried_fresh(
    api: Any, pg: Runtime, sid: str
) -> None:
    """Terminated while it waits for the lock (BEGIN and the lock are one message, nothing
    written): the decide runs once more on a fresh connection, and is decided once."""
    post_decide(api, f"{sid}-warm")
    answer = _fault_while_waiting(api, pg, sid, "pg_terminate_backend")
    assert answer.status_code == 200, answer.text
    assert answer.json()["item"] is not None
    assert written(pg, sid) == 1 and left_open(pg, sid) == []
    assert [post_decide(api, sid).json()["item"] is not None for _ in range(3)] == [True, True, False]


def test_a_lock_wait_past_lock_timeout_answers_503(api: Any, pg: Runtime, sid: str) -> None:
    with psycopg.connect(dsn(pg), autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", lock_args("acme", sid))
        answer = post_decide(api, sid)  # waits lock_timeout (COPILOT_DB_LOCK_TIMEOUT)
        holder.execute("ROLLBACK")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "service.unavailable"
    assert written(pg, sid) == 0 and left_open(pg, sid) == []


def test_kept_connections_the_server_dropped_are_replaced_before_anything_is_written(
    api: Any, pg: Runtime, sid: str
) -> None:
    for i in range(3):
        assert post_decide(api, f"{sid}-w{i}").status_code == 200
    # This app's kept connections only (another app on the server, another test run's
    # among them, has connections of the same application_name)
    mine = [c.get_server_pid() for c in _loop(api)._open]
    assert mine
    with psycopg.connect(dsn(pg), autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(%s)", (mine,)
        ).fetchall()
    assert killed and all(k for (k,) in killed)
    first = post_decide(api, sid)  # its kept connection is dead at BEGIN: tried once more, fresh
    assert first.status_code == 200 and first.json()["item"] is not None


def test_an_error_inside_the_transaction_rolls_back_and_keeps_the_connection(
    pg: Runtime, sid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("a policy bug")

    async def run() -> tuple[int, int, Any]:
        conns = connections(pg.engine, "test-aio", 2)
        assert conns is not None
        try:
            await aio.decide(pg.decider, conns.transact, "acme", "t.daily", f"{sid}-ok")
            before = len(conns._open)
            with monkeypatch.context() as m:
                m.setattr(pg.decider, "conclude", broken)
                with pytest.raises(RuntimeError, match="a policy bug"):
                    await aio.decide(pg.decider, conns.transact, "acme", "t.daily", sid)
            after = await aio.decide(pg.decider, conns.transact, "acme", "t.daily", sid)
            return before, len(conns._open), after
        finally:
            await conns.close()

    before, kept, after = asyncio.run(run())
    assert before == kept == 1  # rolled back, kept, and reused
    assert after.item is not None
    assert written(pg, sid) == 1  # only the decide after the failed one
    assert left_open(pg, sid) == []


def test_a_subject_id_with_quotes_is_a_parameter_never_sql(api: Any, pg: Runtime) -> None:
    sid = "acct-'); DROP TABLE placement_decisions; --" + uuid.uuid4().hex[:6]
    d = post_decide(api, sid)
    assert d.status_code == 200 and d.json()["subject_id"] == sid
    assert post_decide(api, sid).json()["item"] is not None  # the table is there


SEQUENCE: list[tuple[str, dict[str, Any]]] = [
    ("t.daily", {}), ("t.daily", {}), ("t.cool", {}), ("t.cool", {}), ("t.secure", {}),
    ("t.held", {"t.plan": "pro"}), ("t.steps", {}), ("t.steps", {"t.level": 0}),
    ("t.steps", {"t.level": 1, "t.flag": True}), ("t.daily", {}), ("t.daily", {}),
]  # fmt: skip


def test_the_loop_decides_records_and_audits_as_the_threaded_decide_does(
    api: Any, pg: Runtime
) -> None:
    """One sequence of decides (caps, cooldown, a bypassing class, a holdout, thin context,
    rules) over HTTP (on the loop) for one subject and with `Decider.decide` for another:
    the same answers, the same rows and the same audit entries, but for ids and times."""
    held = pg.placements.get("t.held")
    while True:  # two fresh subjects on the same side of t.held's holdout
        a, b = (f"acct-{uuid.uuid4().hex[:10]}" for _ in range(2))
        if pg.decider.held(held, a) == pg.decider.held(held, b):
            break
    client, auth = api
    actor = Actor.system("key:acme-app")  # the HTTP decides' actor: the app key's name
    for name, context in SEQUENCE:
        http = client.post("/v1/decide", headers=auth,
                           json={"placement": name, "subject_id": a, "context": context})  # fmt: skip
        assert http.status_code == 200, http.text
        threaded = pg.decider.decide("acme", name, b, context, actor=actor)
        mine = DecisionOut.model_validate(threaded.model_dump()).model_dump(mode="json")
        assert _but_ids(http.json()) == _but_ids(mine), name
    rows = {s: _rows(pg, s) for s in (a, b)}
    assert len(rows[a]) == len(SEQUENCE) and rows[a] == rows[b]
    pg.audit.settle("acme")
    entries = {
        s: [(e.actor, e.versions, {**e.data, "decision_id": None}, e.personal)
            for e in pg.audit.query("acme", Query(event_type="placement.decided", subject_id=s,
                                                  with_personal=True))]
        for s in (a, b)
    }  # fmt: skip
    assert len(entries[a]) == len(SEQUENCE) and entries[a] == entries[b]
    assert pg.trail.verify("acme").ok


def _but_ids(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("decision_id", "decided_at", "subject_id")}


def _rows(pg: Runtime, sid: str) -> list[tuple[Any, ...]]:
    with pg.engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT placement, chosen, candidates, features, propensity, policy, version, "
            "holdout, level, reasons, counted, segment, explanation FROM placement_decisions "
            "WHERE subject_id = %s ORDER BY decided_at", (sid,)
        ).fetchall()  # fmt: skip
    return [tuple(r) for r in found]


def test_a_bug_in_the_statements_answers_500_not_a_retry_shortly(
    api: Any, pg: Runtime, sid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An asyncpg interface error that is not a lost connection (here a wrong argument
    count) is a bug: 500 with its traceback logged, not 503; nothing is written."""
    from copilot.placements import store

    write = store.write_num

    def short(*a: Any) -> Any:
        sql, args = write(*a)
        return sql, args[:-1]

    monkeypatch.setattr(store, "write_num", short)
    answer = post_decide(api, sid)
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal"
    monkeypatch.undo()
    assert written(pg, sid) == 0 and left_open(pg, sid) == []
    assert post_decide(api, sid).json()["item"] is not None


@pytest.mark.parametrize(("value", "seconds"), [("300000", 300.0), ("300s", 300.0),
                                               ("5min", 300.0), ("0", 0.0), ("x", 0.0)])  # fmt: skip
def test_statement_timeouts_read_as_postgresql_writes_them(value: str, seconds: float) -> None:
    from copilot.api.reads import _ms

    assert _ms(value) == seconds
