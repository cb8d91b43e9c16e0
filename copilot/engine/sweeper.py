"""The sweeper: the database is the source of truth, broker messages are only wake-ups.

A lost message must never lose a run. Each sweep re-enqueues runs that sat queued past a
grace period or whose lease expired (a worker died), chains audit events queued behind
busy writers, gives each due push delivery (an action whose webhook or task failed) its
next attempt, and signs a checkpoint for streams that grew by `checkpoint_every`.
Sweeping twice at once is harmless: advancing is leased and everything else idempotent,
so a second beat scheduler does no damage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import BaseModel

from approvals import Gate
from audit import AuditError, SqlAuditStore, Trail
from copilot.engine.faults import unwoken
from copilot.engine.gating import ActionGate
from copilot.engine.store import RunStore

log = logging.getLogger(__name__)


class SweepReport(BaseModel):
    """What one sweep did."""

    requeued: int = 0
    expired: int = 0
    chained: int = 0
    checkpoints: int = 0
    redelivered: int = 0


class Sweeper:
    """Finds stranded runs and audit work; `sweep()` is safe to call from anywhere, any time."""

    def __init__(
        self,
        runs: RunStore,
        audit: SqlAuditStore,
        enqueue: Callable[[str, float], None],
        *,
        grace_seconds: float,
        trail: Trail | None = None,
        checkpoint_every: int = 0,
        gate: Gate | None = None,
        actions: ActionGate | None = None,
        rewake_seconds: float | None = None,
    ) -> None:
        self.gate = gate
        self.actions = actions
        self.runs = runs
        self.audit = audit
        self.enqueue = enqueue
        self.grace_seconds = grace_seconds
        # A run the sweeper woke is woken again only after this long (it may sit in a long
        # broker queue; one more message per sweep would only lengthen that queue).
        self.rewake_seconds = max(grace_seconds, 1.0) if rewake_seconds is None else rewake_seconds
        self.trail = trail
        self.checkpoint_every = checkpoint_every

    def sweep(self) -> SweepReport:
        """One pass."""
        now = self.runs.clock()
        report = SweepReport()
        if self.gate is not None:  # overdue approvals: expire, escalate, or approve if low risk
            for req in self.gate.expire_due():
                report.expired += 1
                if req.run_id is not None and req.status != "pending":
                    self.enqueue(req.run_id, 0.0)  # its expiry queued the run; wake a worker now
        due = self.runs.due(queued_before=now - self.grace_seconds)  # leases: the db's clock
        # At most one wake-up per run per window, however often the sweeper runs.
        for run_id in unwoken(self.runs, due, now=now, window=self.rewake_seconds):
            self.enqueue(run_id, 0.0)
            report.requeued += 1
        if self.actions is not None:  # push deliveries whose backoff ended, or a person retried
            report.redelivered = self.actions.redeliver_due()
        report.chained = self.audit.settle_all()
        if self.trail is not None and self.checkpoint_every:
            for stream in self.audit.streams():
                size, _ = self.audit.head(stream)
                signed = max((c.size for c in self.audit.checkpoints(stream)), default=0)
                if size - signed >= self.checkpoint_every:
                    try:
                        self.trail.checkpoint(stream)
                        report.checkpoints += 1
                    except AuditError as exc:  # refused: keep sweeping, make it loud
                        log.error("checkpoint of %s refused: %s", stream, exc)
        return report
