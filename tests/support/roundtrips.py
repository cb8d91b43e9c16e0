"""Round trips counted where they happen: on the wire to PostgreSQL, at the driver on SQLite.

`counting()` hooks every connection the code checks out of any SQLAlchemy pool while it
is open, raw-driver fast paths included (`engine.raw_connection()` is a checkout too):

- PostgreSQL: libpq's own protocol trace (`PQtrace`) of each connection. A round trip is
  a run of client messages that the client then waits on the server's answer to: a
  simple `Query` (psycopg's `BEGIN`, `COMMIT`), an extended-protocol statement ending in
  `Sync`, a prepare, or a pipeline of several statements. So implicit BEGINs, COMMITs,
  prepares and driver-level calls count exactly as they cost.
- SQLite: the driver's trace callback, one per statement the library runs (`BEGIN
  IMMEDIATE` and `COMMIT` included); statements a trigger runs are part of their caller.
  SQLite reports each trigger program's start too, which Python's sqlite3 (3.11) passes
  on as the calling statement's text again, so a write whose text repeats the one just
  traced on that connection is its trigger, not a statement (`_sqlite_statement`).

Counts are of a warmed-up process: a connection's first use of a prepared statement costs
one more round trip (the prepare), and psycopg prepares a query on its fifth execution.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import Pool

# Prepared statements' text by (connection, name), remembered across counts: a warmed-up
# connection binds statements it parsed before the count began.
_PREPARED: dict[tuple[int, str], str] = {}
_LINE = re.compile(r"^F\t\d+\t(\w+)\t?(.*)$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Trips:
    """What the code inside `counting()` sent, one entry per round trip (its statement)."""

    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Round trips."""
        return len(self.statements)

    def __str__(self) -> str:
        return f"{self.count} round trips:\n" + "\n".join(
            f"  {i + 1:>2}. {s[:160]}" for i, s in enumerate(self.statements)
        )


@contextmanager
def counting() -> Iterator[Trips]:
    """Count round trips of every pooled connection checked out inside the block."""
    trips = Trips()
    sqlite_seen: list[str] = []
    traced: dict[int, tuple[Any, str | None, int | None]] = {}

    def on_checkout(dbapi: Any, _record: Any, _proxy: Any) -> None:
        if id(dbapi) in traced:
            return
        if isinstance(dbapi, sqlite3.Connection):
            last: list[str] = [""]

            def trace(sql: str) -> None:
                if _sqlite_statement(sql, last[0]):
                    sqlite_seen.append(sql)
                last[0] = sql

            dbapi.set_trace_callback(trace)
            traced[id(dbapi)] = (dbapi, None, None)
            return
        from psycopg import pq

        fd, path = tempfile.mkstemp(prefix="copilot-trace-")
        dbapi.pgconn.trace(fd)
        dbapi.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        traced[id(dbapi)] = (dbapi, path, fd)

    event.listen(Pool, "checkout", on_checkout)
    try:
        yield trips
    finally:
        event.remove(Pool, "checkout", on_checkout)
        for dbapi, path, fd in traced.values():
            if path is None:
                dbapi.set_trace_callback(None)
                continue
            dbapi.pgconn.untrace()  # flushes the trace stream
            trace = Path(path)
            trips.statements.extend(_pg_trips(trace.read_text(errors="replace"), id(dbapi)))
            trace.unlink()
            assert fd is not None
            os.close(fd)
        trips.statements.extend(sqlite_seen)


def _sqlite_statement(sql: str, previous: str) -> bool:
    """Whether a trace line is a statement, not a trigger program of the one before it
    (SQLite's `-- TRIGGER` line, or on Python 3.11 the calling write's text repeated)."""
    if sql.lstrip().startswith("--"):
        return False
    head = sql.lstrip()[:6].upper()
    return sql != previous or head in ("SELECT", "BEGIN ", "COMMIT")


def _pg_trips(trace: str, conn: int) -> list[str]:
    """One entry per round trip: a run of client messages the client then waits on the
    server's answer to (a pipeline of several statements is one), named by its statements."""
    out: list[str] = []
    sent: list[str] = []  # the statements of the client messages since the last answer
    for line in trace.splitlines():
        if line.startswith("B\t"):
            if sent:
                out.append(" + ".join(sent))
                sent = []
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        kind, rest = m.groups()
        quoted = _QUOTED.findall(rest)
        if kind == "Query":
            sent.append(quoted[0] if quoted else rest)
        elif kind == "Parse" and len(quoted) >= 2:
            if quoted[0]:
                _PREPARED[conn, quoted[0]] = quoted[1]
            sent.append(f"(prepare) {quoted[1]}" if quoted[0] else quoted[1])
        elif kind == "Bind" and len(quoted) >= 2 and quoted[1]:
            sent.append(_PREPARED.get((conn, quoted[1]), f"(prepared {quoted[1]})"))
        elif kind == "Sync" and not sent:
            sent.append("(sync)")
    if sent:
        out.append(" + ".join(sent))
    return out
