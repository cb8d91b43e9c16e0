"""Database errors sorted once: transient (retry, bounded, with backoff) or permanent.

Every retry decision in the project asks `transient(exc)`: the runner (a step's
`ctx.execute`, a checkpoint, a lease), the executors and the Celery tasks. A transient
error is a fault of the database's state that passes without anyone changing the code or
the data: a lost connection, a restart, a failover that left a session read-only, a lock
that stayed busy past `lock_timeout`, a statement cancelled by `statement_timeout`, a
deadlock or serialization failure, a privilege revoked for a maintenance window. A
permanent one says the statement or its data is wrong (a constraint, a type, a syntax):
retrying would loop, so the run fails with its code.

`discard(exc)` says whether the connection that raised it must leave the pool: a session
that came back read-only (`default_transaction_read_only` after a demotion) or was ended
by the server keeps failing however often it is reused. The engines of `audit.db` discard
such connections at once (SQLAlchemy's `handle_error` and the raw driver path), so a pool
heals within one failed transaction per connection.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import exc as sa_exc

# SQLSTATE classes and codes that pass on their own.
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")  # connection, rollback, resources, operator
_TRANSIENT_CODES = frozenset(
    {
        "25006",  # read_only_sql_transaction (a demoted primary, a read-only episode)
        "25P03",  # idle_in_transaction_session_timeout ended the session
        "55P03",  # lock_not_available (lock_timeout, NOWAIT)
        "55006",  # object_in_use
        "42501",  # insufficient_privilege (a grant revoked for a while)
        "XX000",  # internal_error: rare, and never the statement's fault alone
    }
)
# The session itself is spoiled: reusing it fails again.
_DISCARD_CODES = frozenset({"25006", "25P03", "57P01", "57P02", "57P03"})
# A statement prepared on the session before a migration changed the row type it returns
# (a column added to `runs`, say): this session fails it again, a fresh one does not.
_STALE_PLAN = ("0A000", "cached plan must not change result type")
_SQLITE_TRANSIENT = ("database is locked", "database is busy", "readonly database", "disk i/o")


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error (wrapped by SQLAlchemy or not), else None."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def transient(exc: BaseException) -> bool:
    """Whether `exc` is a database fault that passes: retry it (bounded, with backoff)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    state = sqlstate(exc)
    if state is not None:
        return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES or _stale_plan(exc)
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        return any(s in str(orig).lower() for s in _SQLITE_TRANSIENT)
    return _is_psycopg_connection_error(orig)


def discard(exc: BaseException) -> bool:
    """Whether the connection that raised `exc` must leave the pool (it would fail again)."""
    state = sqlstate(exc)
    if state is not None:
        return state in _DISCARD_CODES or state.startswith("08") or _stale_plan(exc)
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return _is_psycopg_connection_error(orig)


def _stale_plan(exc: BaseException) -> bool:
    """A prepared statement whose result type a migration changed under the session. Told
    by the server function that raised it (never translated, unlike the message under
    `lc_messages`), or by the English message where the error carries no source."""
    if sqlstate(exc) != _STALE_PLAN[0]:
        return False
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    source = getattr(getattr(orig, "diag", None), "source_function", None)
    return source == "RevalidateCachedQuery" or _STALE_PLAN[1] in str(orig)


def _is_psycopg_connection_error(orig: Any) -> bool:
    """psycopg's errors without a SQLSTATE: the connection broke before the server answered."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError)


__all__ = ["discard", "sqlstate", "transient"]
