"""One conformance suite for every AuditStore (memory, SQLite, PostgreSQL) and every
TransactionalAuditLog (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from audit import (
    Actor,
    AuditEvent,
    AuditStore,
    MemoryAuditStore,
    Query,
    Signer,
    SqlAuditStore,
    Trail,
    TransactionalAuditLog,
    Versions,
)
from audit.db import create_engine
from copilot.db.engines import upgrade


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[AuditStore]:
    if request.param == "memory":
        yield MemoryAuditStore()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = create_engine(url)
    upgrade(engine)
    yield SqlAuditStore(engine)
    engine.dispose()


def ev(event_type: str = "run.created", **kw: object) -> AuditEvent:
    return AuditEvent(event_type=event_type, actor=Actor.system("worker-1"), **kw)


def test_appends_get_contiguous_seqs_and_verify(store: AuditStore) -> None:
    results = store.append("acme", [ev(), ev("step.completed")])
    results += store.append("acme", [ev("run.completed")])
    assert [r.seq for r in results] == [1, 2, 3]
    assert store.head("acme") == (3, bytes.fromhex(results[-1].hash or ""))
    assert Trail(store).verify("acme").line() == "OK 3 entries"


def test_streams_are_independent_chains(store: AuditStore) -> None:
    store.append("acme", [ev()])
    store.append("globex", [ev(), ev()])
    assert store.head("acme")[0] == 1
    assert store.head("globex")[0] == 2
    assert sorted(store.streams()) == ["acme", "globex"]
    # A chain copied under another stream's name does not verify: genesis binds the stream.
    rows = list(store.rows("acme"))
    from audit.verify import verify_chain

    assert verify_chain("globex", rows).reason == "fork"


def test_a_redelivered_append_with_the_same_idempotency_key_is_a_no_op(store: AuditStore) -> None:
    first = store.append("acme", [ev(idempotency_key="run-1:created")])[0]
    again = store.append("acme", [ev(idempotency_key="run-1:created")])[0]
    assert again.duplicate and again.seq == first.seq and again.hash == first.hash
    both = store.append("acme", [ev(idempotency_key="k2"), ev(idempotency_key="k2")])
    assert [r.duplicate for r in both] == [False, True]
    assert store.head("acme")[0] == 2


def test_a_batch_lands_in_order(store: AuditStore) -> None:
    events = [ev(data={"i": i}) for i in range(100)]
    results = store.append("acme", events)
    assert [r.seq for r in results] == list(range(1, 101))
    got = store.query("acme", Query(limit=1000))
    assert [e.data["i"] for e in got] == list(range(100))


def test_query_filters_and_pages(store: AuditStore) -> None:
    store.append(
        "acme",
        [
            ev("run.created", run_id="r1", subject_id="s1"),
            AuditEvent(event_type="approval.decided", actor=Actor.human("maya"), run_id="r1"),
            ev("run.created", run_id="r2", subject_id="s2", versions=Versions(workflow="w@1")),
            ev("run.completed", run_id="r1", subject_id="s1"),
        ],
    )
    assert [e.seq for e in store.query("acme", Query(run_id="r1"))] == [1, 2, 4]
    assert [e.seq for e in store.query("acme", Query(subject_id="s2"))] == [3]
    assert [e.seq for e in store.query("acme", Query(actor_id="maya"))] == [2]
    assert [e.seq for e in store.query("acme", Query(actor_kind="human"))] == [2]
    assert [e.seq for e in store.query("acme", Query(event_type="run.created"))] == [1, 3]
    page1 = store.query("acme", Query(limit=2))
    page2 = store.query("acme", Query(limit=2, after_seq=page1[-1].seq))
    assert [e.seq for e in page1 + page2] == [1, 2, 3, 4]
    assert store.query("acme", Query(run_id="r2"))[0].versions == {"workflow": "w@1"}
    everything = store.query("acme", Query())
    mid = everything[1].recorded_at
    assert all(e.recorded_at >= mid for e in store.query("acme", Query(since=mid)))
    assert all(e.recorded_at < mid for e in store.query("acme", Query(until=mid)))


def test_personal_payloads_are_returned_only_when_asked(store: AuditStore) -> None:
    store.append("acme", [ev(subject_id="s1", personal={"email": "ana@example.com"})])
    plain = store.query("acme", Query())[0]
    assert plain.personal is None and plain.commitment is not None and not plain.erased
    granted = store.query("acme", Query(with_personal=True))[0]
    assert granted.personal == {"email": "ana@example.com"}


def test_erasure_removes_payloads_and_the_chain_still_verifies(store: AuditStore) -> None:
    signer = Signer.generate()
    trail = Trail(store, signer)
    store.append("acme", [ev(subject_id="s1", personal={"name": "Ana"}) for _ in range(3)])
    store.append("acme", [ev(subject_id="s2", personal={"name": "Bo"})])
    trail.checkpoint("acme")
    tomb = trail.erase_subject("acme", "s1", Actor.human("dpo"))
    assert tomb is not None and tomb.seq == 5
    assert trail.erase_subject("acme", "s1", Actor.human("dpo")) is None  # nothing left
    entries = store.query("acme", Query(with_personal=True))
    assert [e.erased for e in entries[:4]] == [True, True, True, False]
    assert entries[3].personal == {"name": "Bo"}
    assert entries[4].data == {"erased_seqs": [1, 2, 3], "count": 3}
    verdict = trail.verify("acme")
    assert verdict.line() == "OK 5 entries (1 after the last signed checkpoint)"
    assert verdict.unsigned == 1


def test_checkpoints_are_recorded_once(store: AuditStore) -> None:
    trail = Trail(store, Signer.generate())
    store.append("acme", [ev()])
    cp = trail.checkpoint("acme")
    assert trail.checkpoint("acme") == cp  # nothing new: the same checkpoint
    store.add_checkpoint(cp)
    assert store.checkpoints("acme") == [cp]
    assert store.hash_at("acme", 1) == bytes.fromhex(cp.head)
    assert store.hash_at("acme", 2) is None


# -- TransactionalAuditLog: appends inside the caller's transaction -----------------------------
#
# The SQL store on each dialect. The memory store is not a TransactionalAuditLog: it has no
# transaction to join (a SQLAlchemy connection's commit or rollback cannot take back what it
# chained in a list), and the product never pairs an in-memory trail with a database.


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest) -> Iterator[SqlAuditStore]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = create_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE app_things (id VARCHAR(10) PRIMARY KEY, state VARCHAR(10))")
        )
    yield SqlAuditStore(engine)
    engine.dispose()


def _as_log(store: SqlAuditStore) -> TransactionalAuditLog:
    return store  # the face the product's writers see


def test_append_in_commits_and_rolls_back_with_the_callers_transaction(log: SqlAuditStore) -> None:
    with log.engine.begin() as conn:
        conn.execute(text("INSERT INTO app_things VALUES ('r1', 'queued')"))
        _as_log(log).append_in(conn, "acme", [ev(run_id="r1")])
    log.settle("acme")
    with pytest.raises(RuntimeError), log.engine.begin() as conn:
        conn.execute(text("UPDATE app_things SET state = 'running' WHERE id = 'r1'"))
        _as_log(log).append_in(conn, "acme", [ev("run.started", run_id="r1")])
        raise RuntimeError("the step failed")
    log.settle("acme")
    with log.engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM app_things")).scalar() == "queued"
    assert [e.event_type for e in log.query("acme", Query())] == ["run.created"]
    assert Trail(log).verify("acme").ok


def test_append_in_lands_a_call_in_order_on_the_same_chain_as_standalone_appends(
    log: SqlAuditStore,
) -> None:
    log.append("acme", [ev()])
    with log.engine.begin() as conn:
        results = _as_log(log).append_in(conn, "acme", [ev(data={"i": i}) for i in range(5)])
    log.append("acme", [ev("run.completed")])
    log.settle("acme")
    # Chained at once, or queued behind another holder of the chain lock and chained since.
    assert all(r.seq == i + 2 or (r.pending and r.seq is None) for i, r in enumerate(results))
    got = log.query("acme", Query(limit=100))
    assert [e.seq for e in got] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.data.get("i") for e in got[1:6]] == [0, 1, 2, 3, 4]
    assert Trail(log).verify("acme").line() == "OK 7 entries"


def test_append_in_treats_a_redelivered_idempotency_key_as_a_no_op(log: SqlAuditStore) -> None:
    with log.engine.begin() as conn:
        _as_log(log).append_in(conn, "acme", [ev(idempotency_key="run-1:created")])
    log.settle("acme")  # chained now, even if it was queued behind another lock holder
    with log.engine.begin() as conn:
        again = _as_log(log).append_in(conn, "acme", [ev(idempotency_key="run-1:created")])[0]
    assert again.duplicate
    assert (again.seq, again.hash) == (1, (log.hash_at("acme", 1) or b"").hex())
    log.settle("acme")
    assert [e.seq for e in log.query("acme", Query())] == [1]


def test_append_in_keeps_personal_payloads_apart_and_erasable(log: SqlAuditStore) -> None:
    with log.engine.begin() as conn:
        _as_log(log).append_in(conn, "acme", [ev(subject_id="s1", personal={"name": "Ana"})])
    log.settle("acme")
    assert log.query("acme", Query())[0].personal is None
    assert log.query("acme", Query(with_personal=True))[0].personal == {"name": "Ana"}
    trail = Trail(log)
    assert trail.erase_subject("acme", "s1", Actor.human("dpo")) is not None
    assert log.query("acme", Query(with_personal=True))[0].erased
    assert trail.verify("acme").ok
