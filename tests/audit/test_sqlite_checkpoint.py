"""SQLite's WAL is checkpointed by the engine's own thread, never inside a writer's commit."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

from sqlalchemy import text

from audit.db import CHECKPOINT_INTERVAL, create_engine


def _write(engine: object, n: int, start: int) -> None:
    for i in range(start, start + n):
        with engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 200 + str(i)})


def test_the_wal_stays_bounded_without_any_writer_checkpointing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        _write(engine, 400, 0)
        first = (tmp_path / "c.db-wal").stat().st_size
        time.sleep(CHECKPOINT_INTERVAL * 5)  # the checkpointer's turn: the WAL is folded in
        _write(engine, 400, 400)
        # The second batch reuses the checkpointed WAL from its start instead of growing it
        # to twice the size, as it would with no checkpoint at all.
        assert (tmp_path / "c.db-wal").stat().st_size < 1.5 * first
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 800
    finally:
        engine.dispose()


def _mine() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "copilot-sqlite-checkpoint"}


def test_the_checkpointer_starts_with_the_first_connection_and_ends_on_dispose(
    tmp_path: Path,
) -> None:
    before = _mine()
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with engine.connect():
        pass
    started = _mine() - before
    assert len(started) == 1
    with engine.connect():
        pass
    assert len(_mine() - before) == 1  # one per engine, not per connection
    engine.dispose()
    (thread,) = started
    thread.join(timeout=CHECKPOINT_INTERVAL * 10)
    assert not thread.is_alive()


def test_an_engine_dropped_without_dispose_is_collected_and_its_thread_ends(
    tmp_path: Path,
) -> None:
    before = _mine()
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    (thread,) = _mine() - before
    time.sleep(CHECKPOINT_INTERVAL * 5)  # the WAL checkpointed, then turns with nothing new
    ref = weakref.ref(engine)
    del engine, conn
    for _ in range(50):  # a bounded wait for the thread's turns, not a speed target
        gc.collect()
        if ref() is None and not thread.is_alive():
            break
        time.sleep(CHECKPOINT_INTERVAL)
    assert ref() is None, "the checkpointer thread keeps the dropped engine alive"
    thread.join(timeout=CHECKPOINT_INTERVAL * 10)
    assert not thread.is_alive()


def test_a_uri_form_file_database_keeps_its_wal_bounded(tmp_path: Path) -> None:
    """SQLite names the file (`PRAGMA database_list`), not the URL's database string."""
    db = tmp_path / "u.db"
    engine = create_engine(f"sqlite:///file:{db}?uri=true")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        _write(engine, 400, 0)
        first = (tmp_path / "u.db-wal").stat().st_size
        for i in range(3):
            time.sleep(CHECKPOINT_INTERVAL * 5)  # the checkpointer's turns
            _write(engine, 400, 400 * (i + 1))
        assert (tmp_path / "u.db-wal").stat().st_size < 1.5 * first
    finally:
        engine.dispose()


def test_an_in_memory_database_gets_no_checkpointer_and_keeps_the_default() -> None:
    before = _mine()
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert not _mine() - before
    finally:
        engine.dispose()

