"""The SQL `AuditStore` (SQLite and PostgreSQL), on SQLAlchemy Core and the raw drivers.

`store` is the facade; `tables` the schema; `sqlite` and `postgres` what differs by
dialect, one module per seam.
"""

from __future__ import annotations

from audit.stores.sql.store import SqlAuditStore
from audit.stores.sql.tables import checkpoints, entries, metadata, payloads, pending

__all__ = [
    # The store
    "SqlAuditStore",
    # Its tables (the migrations create them)
    "checkpoints",
    "entries",
    "metadata",
    "payloads",
    "pending",
]
