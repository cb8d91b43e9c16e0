"""Retention: signal values are kept only as long as their declaration says.

`purge` deletes, per tenant and in one transaction with its audit event, every value
older than its signal's declared retention, and (`--undeclared`) every value of a signal
that is no longer declared. The audit event records counts per
signal name, never values. Celery beat runs it (`copilot.retention`); so does
`copilot retention run`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, and_, delete, select

from audit import Actor, AuditEvent, TransactionalAuditLog
from audit.db import readonly
from copilot.db.tables import signals
from copilot.governance.signals import SignalRegistry

PURGED_EVENT = "retention.purged"


def _tenants(engine: Engine) -> list[str]:
    with readonly(engine.connect()) as conn:
        return sorted(conn.execute(select(signals.c.tenant).distinct()).scalars())


def purge(
    engine: Engine,
    audit: TransactionalAuditLog,
    registry: SignalRegistry,
    *,
    now: float,
    tenants: Iterable[str] | None = None,
    undeclared: bool = False,
) -> dict[str, dict[str, int]]:
    """Delete expired signal values (and, with `undeclared`, values of undeclared signals).

    Undeclared values are deleted only when asked: a process started without some of the
    declarations (a missing COPILOT_SIGNALS_PATH) must not wipe what it does not know.
    """
    report: dict[str, dict[str, int]] = {}
    declared = [spec.name for spec in registry.specs()]
    for tenant in sorted(tenants) if tenants is not None else _tenants(engine):
        counts: dict[str, int] = {}
        with engine.begin() as conn:
            for spec in registry.specs():
                cutoff = now - spec.retention.total_seconds()
                gone = conn.execute(
                    delete(signals).where(
                        and_(signals.c.tenant == tenant, signals.c.name == spec.name),
                        signals.c.observed_at < cutoff,
                    )
                ).rowcount
                if gone:
                    counts[spec.name] = gone
            stray = (
                conn.execute(
                    delete(signals).where(
                        signals.c.tenant == tenant, signals.c.name.not_in(declared)
                    )
                ).rowcount
                if undeclared and declared
                else 0
            )
            if stray:
                counts["(undeclared)"] = stray
            if counts:
                audit.append_in(conn, tenant, [AuditEvent(
                    event_type=PURGED_EVENT, actor=Actor.system("retention"),
                    data={"counts": counts, "total": sum(counts.values()), "at": now})])  # fmt: skip
        report[tenant] = counts
    return report
