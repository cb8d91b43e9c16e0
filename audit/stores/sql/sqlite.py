"""SQLite's side of the SQL store: appends and the verifier's scan, on the sqlite3 driver.

SQLite serializes writers anyway (`BEGIN IMMEDIATE`, see audit.db), so an append reads
the head and inserts the next entries inside the writer's own transaction: nothing is
ever queued, and every result is chained when it returns. Driver-level calls throughout:
SQLAlchemy's per-statement machinery would cost more than the inserts themselves.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from sqlalchemy import Engine

from audit.chain import Sealed
from audit.db import _driver
from audit.model import AppendResult
from audit.stores.sql.tables import COLUMNS, link_rows
from audit.verify import INDEX_COLUMNS, Row

_INSERT_SQL = f"INSERT INTO audit_entries ({COLUMNS}) VALUES ({', '.join('?' * 13)})"
_INSERT_PAYLOAD_SQL = "INSERT INTO audit_payloads (stream, seq, salt, payload) VALUES (?, ?, ?, ?)"

_row = tuple.__new__  # a NamedTuple from a tuple in C (Row(...) is a Python-level call)
INDEX = ", ".join(INDEX_COLUMNS)  # verification checks them against each body
HEAD_SQL = "SELECT seq, hash FROM audit_entries WHERE stream = ? ORDER BY seq DESC LIMIT 1"


def append_standalone(engine: Engine, stream: str, sealed: Sequence[Sealed]) -> list[AppendResult]:
    """Append in a transaction of our own, on a pooled driver connection."""
    raw = engine.raw_connection()
    try:
        dbapi = _driver(raw)
        dbapi.execute("BEGIN IMMEDIATE")
        try:
            results = append(dbapi, stream, sealed)
        except BaseException:
            dbapi.execute("ROLLBACK")
            raise
        dbapi.execute("COMMIT")
    finally:
        raw.close()
    return results


def append(dbapi: Any, stream: str, sealed: Sequence[Sealed]) -> list[AppendResult]:
    """Chain `sealed` after the stream's head; `dbapi` is a sqlite3 connection inside
    `BEGIN IMMEDIATE`, so it holds the database's write lock."""
    keys = [s.event.idempotency_key for s in sealed if s.event.idempotency_key]
    known: dict[str, tuple[int, bytes]] = {}
    if keys:
        marks = ",".join("?" * len(keys))
        found = dbapi.execute(
            "SELECT idempotency_key, seq, hash FROM audit_entries "
            f"WHERE stream = ? AND idempotency_key IN ({marks})",
            (stream, *keys),
        )
        known = {k: (q, bytes(h)) for k, q, h in found}
    head = dbapi.execute(HEAD_SQL, (stream,)).fetchone()
    rows, blobs, results = link_rows(stream, head, sealed, known)
    if rows:
        dbapi.executemany(_INSERT_SQL, rows)
    if blobs:
        dbapi.executemany(_INSERT_PAYLOAD_SQL, blobs)
    return results


def rows(engine: Engine, stream: str, after_seq: int) -> Generator[Row, None, None]:
    """The chain's rows with their payloads, in seq order, in constant memory.

    Verification is a read of every byte (the index columns too: they must say what the
    body says); SQLAlchemy's per-row result machinery and a
    per-row join would cost more than the hashing. Two ordered scans, merged here (few
    entries have payloads), through the driver, in a deferred read transaction that never
    blocks writers and sees one consistent snapshot.
    """
    raw = engine.raw_connection()
    try:
        db = _driver(raw)
        db.execute("BEGIN")
        try:
            found = db.execute(
                f"SELECT seq, prev_hash, hash, commitment, body, NULL, NULL, {INDEX} FROM audit_entries "
                "WHERE stream = ? AND seq > ? ORDER BY seq",
                (stream, after_seq),
            )
            blobs = db.execute(
                "SELECT seq, salt, payload FROM audit_payloads "
                "WHERE stream = ? AND seq > ? ORDER BY seq",
                (stream, after_seq),
            )
            nxt = blobs.fetchone()
            while batch := found.fetchmany(5000):
                for r in batch:  # laid out as a Row, salt and payload NULL
                    seq = r[0]
                    while nxt is not None and nxt[0] < seq:
                        nxt = blobs.fetchone()
                    if nxt is not None and nxt[0] == seq:
                        yield Row(seq, r[1], r[2], r[3], r[4], nxt[1], nxt[2], *r[7:])
                    else:
                        yield _row(Row, r)  # the cursor's tuple as a Row, without a copy

        finally:
            db.execute("ROLLBACK")
    finally:
        raw.close()


__all__ = ["append", "append_standalone", "rows"]
