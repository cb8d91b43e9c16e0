"""Prometheus text for operators: runs, approvals, degradation, audit heads, executor failures.

Each scrape reads the database (grouped counts over indexed columns); nothing is kept in
process memory, so every API process reports the same figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Engine, func, select

from approvals.queue import failing_by_tenant, waiting_by_tenant
from audit import SqlAuditStore
from audit.db import readonly
from copilot.db.tables import receipts, runs

Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _family(name: str, kind: str, help_: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}")
    return lines


def render(engine: Engine, *, now: float | None = None) -> str:
    """The metrics page (text exposition format 0.0.4)."""
    now = time.time() if now is None else now
    r = runs.c
    with readonly(engine.connect()) as conn:
        by_state = conn.execute(
            select(r.tenant, r.state, func.count()).group_by(r.tenant, r.state)
        ).all()
        by_level = conn.execute(
            select(r.tenant, r.level, func.count()).where(r.level.is_not(None))
            .group_by(r.tenant, r.level)
        ).all()  # fmt: skip
        waiting = waiting_by_tenant(conn)
        failing = failing_by_tenant(conn)
        refused = conn.execute(
            select(receipts.c.tenant, receipts.c.executor, func.count())
            .where(receipts.c.status == "refused")
            .group_by(receipts.c.tenant, receipts.c.executor)
        ).all()  # fmt: skip
        heads = SqlAuditStore.stream_heads(conn)
        queued = SqlAuditStore.queued_count(conn)
    lines = [
        *_family("copilot_runs", "gauge", "Runs by tenant and state.",
                 (({"tenant": t, "state": s}, n) for t, s, n in by_state)),
        *_family("copilot_runs_by_level", "gauge", "Runs by tenant and degradation level.",
                 (({"tenant": t, "level": lv}, n) for t, lv, n in by_level)),
        *_family("copilot_approvals_pending", "gauge", "Pending approval requests.",
                 (({"tenant": t}, n) for t, n, _ in waiting)),
        *_family("copilot_approvals_oldest_pending_age_seconds", "gauge",
                 "Age of the oldest pending approval request.",
                 (({"tenant": t}, round(max(0.0, now - oldest), 3)) for t, _, oldest in waiting)),
        *_family("copilot_executions_failing", "gauge",
                 "Approved actions whose last execution failed (retried with the same key).",
                 (({"tenant": t}, n) for t, n in failing)),
        *_family("copilot_executor_refused_total", "counter",
                 "Actions an executor's endpoint refused (4xx), by executor.",
                 (({"tenant": t, "executor": e}, n) for t, e, n in refused)),
        *_family("copilot_audit_stream_head", "gauge", "Seq of the last chained entry per stream.",
                 (({"stream": s}, n) for s, n in heads)),
        *_family("copilot_audit_pending_events", "gauge",
                 "Audit events queued behind busy writers, not yet chained.", [({}, queued)]),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
