"""The database's clock, the one every host agrees on: leases are taken and checked by it.

A lease is a deadline that several hosts compare. Stamped and compared with each worker's
own clock, a worker whose clock runs minutes ahead sees every live lease as expired and
steals it, and one whose clock runs behind writes a deadline already past, so its runs are
stolen from under it. Reading `now` from the database inside the statement that takes,
renews or checks a lease makes the comparison one clock's: the skew between hosts drops
out. (SQLite is one host's file, so its clock is that host's; the expression is the same
idea there.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# For raw driver calls on PostgreSQL (the copilot_* functions), the same clock as text.
PG_EPOCH = "extract(epoch from clock_timestamp())::float8"


class db_epoch(FunctionElement[float]):
    """Seconds since the epoch by the database's clock, as a float."""

    type = Float()
    inherit_cache = True


@compiles(db_epoch, "postgresql")
def _pg(element: db_epoch, compiler: Any, **kw: Any) -> str:
    return PG_EPOCH


@compiles(db_epoch)
def _default(element: db_epoch, compiler: Any, **kw: Any) -> str:
    # SQLite: julianday('now') has millisecond resolution; 2440587.5 is the epoch's day.
    return "((julianday('now') - 2440587.5) * 86400.0)"
