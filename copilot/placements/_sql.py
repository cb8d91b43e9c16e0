"""The dialect seam of the placements wing: the per-subject lock's key space and the idempotent insert.

Caps are read and spent in one transaction per decide. Two decides for one subject must
not both read "budget left" and both spend it, so each takes the subject's lock first:
on PostgreSQL a transaction-scoped advisory lock (taken by `store.read_state`) (two-int keyspace, so it never meets the
audit trail's one-bigint stream locks); on SQLite every writing transaction is already
`BEGIN IMMEDIATE` (audit.db), which serializes writers on the database lock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

LOCK_CLASS = 0x5043_4C4B & 0x7FFF_FFFF  # "PCLK": the placements wing's advisory-lock class


def insert_new(conn: Connection, table: Table, row: dict[str, Any], keys: list[str]) -> bool:
    """Insert `row` unless one with the same `keys` exists; whether it was inserted."""
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(table).values(**row).on_conflict_do_nothing(index_elements=keys)
    # RETURNING, not rowcount: an implicit RETURNING of the key makes PostgreSQL's rowcount -1.
    key = next(iter(table.primary_key.columns))
    return conn.execute(stmt.returning(key)).first() is not None
