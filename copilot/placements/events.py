"""Exposure events on decisions: impression, accept, dismiss, snooze, complete.

Idempotent by the app's `event_id` within its decision: a redelivered post answers
`duplicate: true` and writes nothing; the same id reused on that decision for another kind
is `placement.event_conflict`. Event ids are scoped to the decision, not the tenant, so a
subject token holder can neither learn another subject's decision from a conflict nor
squat the id another subject's page will send. An event is dated between its decision and
now (plus `MAX_SKEW` for clocks): else `placement.event_time`. A new event and its
`placement.event` audit entry commit together. Dismiss, snooze and complete feed the caps
the next decide reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine

from audit import Actor, AuditEvent, TransactionalAuditLog
from copilot.db.tables import placement_events
from copilot.placements import store
from copilot.placements._sql import insert_new
from copilot.placements.errors import DecisionNotFoundError, EventError, TokenError
from copilot.placements.records import EventIn, EventRecorded
from copilot.placements.registry import PlacementRegistry

MAX_SNOOZE = 365 * 86_400.0
MAX_SKEW = 300.0  # how far ahead of the server's clock a client may date an event


class Events:
    """Records exposure events against the decision log."""

    def __init__(
        self,
        engine: Engine,
        audit: TransactionalAuditLog,
        placements: PlacementRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.placements = placements
        self.clock = clock

    def record(
        self,
        tenant: str,
        decision_id: str,
        event: EventIn,
        *,
        actor: Actor,
        subject_scope: str | None = None,
    ) -> EventRecorded:
        """Record `event` on the decision (`subject_scope`: a subject token's one subject)."""
        now = self.clock()
        at = event.at if event.at is not None else now
        with self.engine.begin() as conn:
            row = store.decision_row(conn, tenant, decision_id)
            if row is None:
                raise DecisionNotFoundError(f"no decision {decision_id} in this tenant",
                                            decision_id=decision_id)  # fmt: skip
            if subject_scope is not None and row.subject_id != subject_scope:
                raise TokenError("this subject token is for another subject",
                                 code="token.wrong_subject", decision_id=decision_id)  # fmt: skip
            if row.chosen is None:
                raise EventError(f"decision {decision_id} showed nothing; there is nothing to "
                                 f"record {event.kind} on", decision_id=decision_id)  # fmt: skip
            if not row.decided_at <= at <= now + MAX_SKEW:
                raise EventError(
                    f"an event's `at` must be between its decision ({row.decided_at}) and now "
                    f"(+{int(MAX_SKEW)} s); got {at}", code="placement.event_time", field="at",
                )  # fmt: skip
            until = self._until(row.placement, event, at)
            doc = {"tenant": tenant, "event_id": event.event_id, "decision_id": decision_id,
                   "subject_id": row.subject_id, "placement": row.placement,
                   "candidate": row.chosen, "kind": event.kind, "at": at, "until": until}  # fmt: skip
            if not insert_new(conn, placement_events, doc, ["tenant", "decision_id", "event_id"]):
                return self._duplicate(conn, tenant, decision_id, event)
            self.audit.append_in(conn, tenant, [AuditEvent(
                event_type="placement.event", actor=actor, subject_id=row.subject_id,
                data={"decision_id": decision_id, "event_id": event.event_id, "kind": event.kind,
                      "placement": row.placement, "candidate": row.chosen, "at": at,
                      "until": until},
            )])  # fmt: skip
        return EventRecorded(event_id=event.event_id, decision_id=decision_id, kind=event.kind,
                             at=at, until=until)  # fmt: skip

    def _until(self, placement: str, event: EventIn, at: float) -> float | None:
        if event.kind != "snooze":
            if event.until is not None:
                raise EventError("`until` is for snooze events only", field="until")
            return None
        if event.until is None:
            return at + self.placements.get(placement).snooze_for.total_seconds()
        if not at < event.until <= at + MAX_SNOOZE:
            raise EventError(
                "a snooze's `until` must be after `at` and within a year", field="until"
            )
        return event.until

    def _duplicate(
        self, conn: object, tenant: str, decision_id: str, event: EventIn
    ) -> EventRecorded:
        prior = store.event_row(conn, tenant, decision_id, event.event_id)  # type: ignore[arg-type]
        assert prior is not None  # the insert conflicted with it
        if prior.kind != event.kind:
            raise EventError(
                f"event id {event.event_id!r} was already used for a {prior.kind} on this "
                "decision; send a new event id", code="placement.event_conflict",
                event_id=event.event_id,
            )  # fmt: skip
        return EventRecorded(event_id=prior.event_id, decision_id=decision_id, kind=prior.kind,
                             at=prior.at, until=prior.until, duplicate=True)  # fmt: skip


__all__ = ["Events"]
