"""The database toolkit every package shares: engines, readers, raw driver connections.

The trail's needs set the engine's configuration (WAL and `BEGIN IMMEDIATE` on SQLite,
one-round-trip server functions on PostgreSQL); the runtime and the gate use the same
engines, so this module sits at the bottom of the stack and imports nothing of ours.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import make_url

from audit.dberrors import discard

log = logging.getLogger(__name__)

_READONLY = "copilot_readonly"
# How often a SQLite engine's checkpointer copies the WAL back into the database file.
CHECKPOINT_INTERVAL = 0.2
_AUTOCOMMIT_READ = "copilot_autocommit_read"


def create_engine(url: str, *, synchronous_commit: bool = True, **kwargs: Any) -> Engine:
    """An engine configured the way the trail needs it.

    SQLite: WAL, `synchronous=NORMAL` (a committed transaction survives a process crash),
    a 30 s busy timeout, and `BEGIN IMMEDIATE` for every transaction that may write, so
    concurrent writers queue on the lock instead of failing on upgrade. Readers opt out
    with `conn.execution_options(copilot_readonly=True)`.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        # No pool pre-ping: it costs a round trip per transaction, as much as the append.
        # A connection broken by a server restart fails its transaction, which the
        # runtime retries (OperationalError is transient) on a fresh connection.
        engine = sa_create_engine(url, **kwargs)
        heal(engine)
        if not synchronous_commit:
            # For transactions whose loss in a database crash is harmless (they are redone):
            # commits return without waiting for the WAL flush.
            @event.listens_for(engine, "connect")
            def _async_commit(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.autocommit = True
                dbapi_conn.execute("SET synchronous_commit = off")
                dbapi_conn.autocommit = False

        return engine
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", 30)
    connect_args.setdefault("check_same_thread", False)
    engine = sa_create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # No checkpoint inside a writer's commit: the one that crossed the 1,000-page mark
        # would pay the checkpoint's fsync of the database file (~10 ms, every ~70 small
        # transactions: the p99 of a decide). The engine's checkpointer thread does it, for
        # the file SQLite itself names (a URI-form URL names it differently); a database
        # with no file (in memory) keeps SQLite's default.
        main = [row[2] for row in cur.execute("PRAGMA database_list") if row[1] == "main"]
        if main and main[0] and checkpoints.ensure(main[0]):
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    checkpoints = _Checkpoints(engine)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_AUTOCOMMIT_READ, False):
            return  # each statement its own snapshot, as on PostgreSQL: no BEGIN, no ROLLBACK
        conn.exec_driver_sql("BEGIN" if options.get(_READONLY, False) else "BEGIN IMMEDIATE")

    return engine


def heal(engine: Engine) -> None:
    """Discard a pooled connection whose error says it would fail again (see audit.dberrors).

    A session left read-only by a failover, or ended by the server, is invalidated on its
    first error instead of failing every transaction it is lent to. Costs no round trip.
    """

    @event.listens_for(engine, "handle_error")
    def _discard(ctx: Any) -> None:
        if ctx.original_exception is not None and discard(ctx.original_exception):
            ctx.is_disconnect = True


def readonly(conn: Connection, *, autocommit: bool = True) -> Connection:
    """Mark a fresh connection as a reader.

    Autocommit on both: a single-statement read costs one round trip (PostgreSQL) or one
    statement (SQLite, which never blocks writers) instead of three (BEGIN, read, COMMIT);
    pass `autocommit=False` for a multi-statement snapshot (SQLite: a deferred transaction)
    or a server-side cursor.
    """
    if autocommit and conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="AUTOCOMMIT", **{_READONLY: True})
    return conn.execution_options(**{_READONLY: True, _AUTOCOMMIT_READ: autocommit})


# Held while a checkpointer starts or checkpoints; a fork waits for it (os.register_at_fork),
# so a child never inherits SQLite's or our locks taken mid-checkpoint by a thread it does
# not have (a forked process that then opened the database hung on such a lock).
_FORK_GUARD = threading.Lock()
os.register_at_fork(before=_FORK_GUARD.acquire, after_in_parent=_FORK_GUARD.release,
                    after_in_child=_FORK_GUARD.release)  # fmt: skip


class _Checkpoints:
    """An engine's checkpointer, started at its first connection to a database file (in each
    process: threads do not survive a fork, so a forked child starts its own)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._thread: _Checkpointer | None = None
        self._pid = 0
        self._done = threading.Event()
        event.listen(engine, "engine_disposed", lambda _e: self._done.set())

    def ensure(self, path: str) -> bool:
        """Checkpoint `path`'s WAL from now on (started once per process); whether one does."""
        with _FORK_GUARD:
            if self._done.is_set():
                return False
            if self._thread is None or self._pid != os.getpid():
                self._thread = _Checkpointer(self._engine, path, self._done)
                self._pid = os.getpid()
                self._thread.start()
            return True


class _Checkpointer(threading.Thread):
    """Copies a SQLite engine's WAL back into the database file every CHECKPOINT_INTERVAL
    seconds, off the writers' path (a PASSIVE checkpoint: it never blocks readers or
    writers, and copies what no reader still needs), on a connection of its own (never one
    of the engine's pool). It holds the engine weakly and ends when the engine is disposed
    or collected. SQLite still checkpoints the WAL away when the last connection to the
    database closes, so a process that exits early leaves nothing behind."""

    def __init__(self, engine: weakref.ref[Engine], path: str, done: threading.Event) -> None:
        super().__init__(name="copilot-sqlite-checkpoint", daemon=True)
        self._engine = engine
        self._path = path
        self._wal = Path(f"{path}-wal")
        self._done = done

    def run(self) -> None:
        seen: tuple[int, int] | None = None
        db: sqlite3.Connection | None = None
        try:
            while not self._done.wait(CHECKPOINT_INTERVAL):
                if self._engine() is None:  # no strong reference kept between turns
                    return
                try:
                    st = self._wal.stat()
                except OSError:
                    continue  # no WAL yet
                if (st.st_size, st.st_mtime_ns) == seen:
                    continue  # nothing written since the last turn
                seen = (st.st_size, st.st_mtime_ns)
                with _FORK_GUARD:
                    try:
                        if db is None:
                            db = sqlite3.connect(self._path, timeout=0, check_same_thread=False)
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as exc:  # busy or gone: the next turn retries
                        log.debug("sqlite checkpoint skipped: %s", exc)
        finally:
            if db is not None:
                db.close()


@contextmanager
def autocommit_driver(engine: Engine) -> Iterator[Any]:
    """A pooled PostgreSQL driver connection in autocommit mode, for one-statement transactions.

    The hot paths (appends, leases, checkpoints) are server-side functions called in one
    round trip; SQLAlchemy's per-statement machinery would cost as much as the call.
    """
    raw = engine.raw_connection()
    try:
        db = _driver(raw)
        db.autocommit = True
        yield db
    except Exception as exc:
        discard_if_spoiled(raw, exc)
        raise
    finally:
        if raw.driver_connection is not None and not getattr(
            raw.driver_connection, "closed", False
        ):
            raw.driver_connection.autocommit = False
        raw.close()


def discard_if_spoiled(raw: Any, exc: BaseException) -> None:
    """Invalidate a raw pooled connection when `exc` says it would fail again."""
    if discard(exc):
        raw.invalidate(exc)


def _driver(pooled: Any) -> Any:
    """The DBAPI connection (sqlite3 / psycopg) behind a pooled SQLAlchemy connection."""
    dbapi = pooled.driver_connection
    if dbapi is None:  # pragma: no cover - only after the pool invalidated it
        raise RuntimeError("the pooled connection was invalidated")
    return dbapi


def driver_of(conn: Connection) -> Any:
    """The DBAPI connection (sqlite3 / psycopg) under `conn`, inside its transaction.

    For hot paths that run a few tiny statements per call: SQLAlchemy's per-statement
    machinery (compile cache lookups, result metadata) costs more CPU than they do."""
    return _driver(conn.connection)


def ids_starting(engine: Engine, table: Any, prefix: str, *, tenant: str, limit: int) -> list[str]:
    """Up to `limit` ids of `table`'s rows in `tenant` that start with `prefix` (short ids)."""
    stmt = (
        select(table.c.id)
        .where(starting_with(table.c.id, prefix), table.c.tenant == tenant)
        .order_by(table.c.id)
        .limit(limit)
    )
    with readonly(engine.connect()) as conn:
        return list(conn.execute(stmt).scalars())


def starting_with(column: Any, prefix: str) -> Any:
    """`column` starts with `prefix`, exactly: the same on every dialect (SQLite's LIKE
    ignores case), and no character of the prefix is a wildcard."""
    return func.substr(column, 1, len(prefix)) == prefix


__all__ = [
    "autocommit_driver",
    "create_engine",
    "discard_if_spoiled",
    "driver_of",
    "heal",
    "ids_starting",
    "readonly",
    "starting_with",
]
