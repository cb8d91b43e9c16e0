"""SQLite's WAL is checkpointed by the engine's own thread, never inside a writer's commit."""

from __future__ import annotations

import threading
import time
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


def test_the_checkpointer_ends_with_its_engine(tmp_path: Path) -> None:
    def mine() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "copilot-sqlite-checkpoint"]

    before = set(mine())
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    started = set(mine()) - before
    assert len(started) == 1
    engine.dispose()
    (thread,) = started
    thread.join(timeout=CHECKPOINT_INTERVAL * 10)
    assert not thread.is_alive()
