"""Context: the signals a run reads about its subject, from any `ContextSource`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, insert, select

from audit.db import readonly
from copilot.db.tables import signals


class SignalValue(BaseModel):
    """One observed value of a signal."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: Any
    observed_at: float
    source: str


class ContextSource(Protocol):
    """Where a run's signals come from."""

    def fetch(self, tenant: str, subject_id: str, names: Sequence[str]) -> dict[str, SignalValue]:
        """The latest value of each named signal the source holds for the subject."""
        ...


class SqlSignalSource:
    """The default source: the `signals` table (what `put_signals` and ingestion write)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def fetch(self, tenant: str, subject_id: str, names: Sequence[str]) -> dict[str, SignalValue]:
        """Latest value per name."""
        if not names:
            return {}
        with readonly(self.engine.connect()) as conn:
            return latest_in(conn, tenant, subject_id, names)


def latest_in(
    conn: Connection, tenant: str, subject_id: str, names: Sequence[str]
) -> dict[str, SignalValue]:
    """Latest value per name, read on `conn` (inside a caller's transaction)."""
    if not names:
        return {}
    c = signals.c
    stmt = (
        select(c.name, c.value, c.observed_at, c.source)
        .where(c.tenant == tenant, c.subject_id == subject_id, c.name.in_(list(names)))
        .order_by(c.name, c.observed_at)
    )
    out: dict[str, SignalValue] = {}
    for name, value, observed_at, source in conn.execute(stmt):
        out[name] = SignalValue(
            name=name, value=json.loads(value), observed_at=observed_at, source=source
        )
    return out


def put_signals(
    engine: Engine,
    tenant: str,
    subject_id: str,
    values: Mapping[str, Any],
    *,
    observed_at: float | None = None,
    source: str = "api",
) -> int:
    """Record signal values for a subject in one transaction; returns how many."""
    at = time.time() if observed_at is None else observed_at
    rows = [
        {
            "tenant": tenant,
            "subject_id": subject_id,
            "name": k,
            "value": json.dumps(v),
            "observed_at": at,
            "source": source,
        }
        for k, v in values.items()
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(signals), rows)
    return len(rows)
