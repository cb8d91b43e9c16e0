"""Subject controls: opt out of everything or of one workflow, snooze, consent basis.

Checked when a run is triggered (an opted-out or snoozed subject's run is `skipped` with a
reason code) and again just before an approved action executes (a withdrawn consent
cancels the action). Every change is audited in the same transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, delete, insert, select

from audit import Actor, AuditEvent, TransactionalAuditLog
from audit.db import readonly
from copilot.db.tables import subject_preferences as prefs_table


class Preferences(BaseModel):
    """A subject's controls."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    subject_id: str
    opt_out_all: bool = False
    opt_out_workflows: tuple[str, ...] = ()
    snooze_until: float | None = None
    consent_basis: str | None = None

    def refusal(self, workflow: str, now: float) -> str | None:
        """Why `workflow` may not act for this subject now (a reason code), or None."""
        if self.opt_out_all:
            return "opted_out:all"
        if workflow in self.opt_out_workflows:
            return f"opted_out:{workflow}"
        if self.snooze_until is not None and now < self.snooze_until:
            until = datetime.fromtimestamp(self.snooze_until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return f"snoozed_until:{until}"
        return None


class Consent:
    """Reads and changes subject preferences."""

    def __init__(
        self, engine: Engine, audit: TransactionalAuditLog, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock

    def get(self, tenant: str, subject_id: str) -> Preferences:
        """The subject's preferences (defaults when none were set)."""
        stmt = select(prefs_table).where(
            prefs_table.c.tenant == tenant, prefs_table.c.subject_id == subject_id
        )
        with readonly(self.engine.connect()) as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return Preferences(tenant=tenant, subject_id=subject_id)
        return Preferences(
            tenant=tenant,
            subject_id=subject_id,
            opt_out_all=row.opt_out_all,
            opt_out_workflows=tuple(json.loads(row.opt_out_workflows)),
            snooze_until=row.snooze_until,
            consent_basis=row.consent_basis,
        )

    def refusal(self, tenant: str, subject_id: str, workflow: str) -> str | None:
        """Why the workflow may not act for the subject now, or None."""
        return self.get(tenant, subject_id).refusal(workflow, self.clock())

    def set(self, prefs: Preferences, *, actor: Actor) -> Preferences:
        """Replace the subject's preferences, audited in the same transaction."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(prefs_table).where(
                    prefs_table.c.tenant == prefs.tenant,
                    prefs_table.c.subject_id == prefs.subject_id,
                )
            )
            conn.execute(
                insert(prefs_table).values(
                    tenant=prefs.tenant,
                    subject_id=prefs.subject_id,
                    opt_out_all=prefs.opt_out_all,
                    opt_out_workflows=json.dumps(sorted(prefs.opt_out_workflows)),
                    snooze_until=prefs.snooze_until,
                    consent_basis=prefs.consent_basis,
                    updated_at=self.clock(),
                )
            )
            self.audit.append_in(
                conn,
                prefs.tenant,
                [
                    AuditEvent(
                        event_type="subject.preferences_changed",
                        actor=actor,
                        subject_id=prefs.subject_id,
                        data={
                            "opt_out_all": prefs.opt_out_all,
                            "opt_out_workflows": sorted(prefs.opt_out_workflows),
                            "snooze_until": prefs.snooze_until,
                            "consent_basis": prefs.consent_basis,
                        },
                    )
                ],
            )
        return prefs
