"""Proactive runs: schedules fanned out from beat, event triggers fired by ingestion.

Both start runs through `Runner.trigger`, so opt-out and snooze (a skipped run with its
reason) and holdouts apply exactly as to any run, and the `run.created` audit event
carries the cause: the schedule and its period, or the event trigger, the condition
that held and its debounce window.

Schedules. Each beat tick (`copilot.schedules`) finds, per schedule, the subjects that
are due in the current period (their jittered moment has come) and have no run for it
yet, and hands them to fan-out tasks in batches. A run's idempotency key names the
period and subject, so a beat that restarts, or a second beat, or a redelivered batch
never runs a period twice; and since "has no run yet" is read from the database each
tick, a lost batch message is simply found again on the next tick. A period missed
entirely (no beat for all of it) is not replayed: its runs would be stale.

Event triggers. `Proactive.ingest` writes a batch through `SignalRegistry.ingest`, then
checks each event trigger's conditions against the batch and the subject's previous
values. Firing is a compare-and-set on `trigger_state.fired_at`: of any number of
concurrent ingestions for one subject, exactly one opens a debounce window and creates
its run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError

from audit.db import readonly
from audit.errors import CopilotError
from copilot.db.tables import runs, signals, trigger_state
from copilot.engine.runner import Runner
from copilot.governance.sources import SqlSignalSource
from copilot.workflow.triggers import Condition, EventTrigger, Schedule, Subjects, iso

log = logging.getLogger(__name__)

# Dispatch a batch of due subjects: (schedule, tenant, period start, subject ids).
Dispatch = Callable[[str, str, float, list[str]], None]
CLOCK_SKEW = 300.0  # seconds another host's clock may lag ours when it created a run


class Fired(BaseModel):
    """A run a schedule or trigger started (or found already started: `created` False)."""

    cause: str
    subject_id: str
    run_id: str
    state: str
    created: bool


class Ingested(BaseModel):
    """What one ingestion wrote and fired."""

    count: int
    fired: list[Fired] = Field(default_factory=list)
    failed: list[dict[str, str]] = Field(default_factory=list)


class TickReport(BaseModel):
    """What one beat tick found due and dispatched."""

    due: dict[str, int] = Field(default_factory=dict)
    batches: int = 0


class Proactive:
    """Carries out the registry's schedules and event triggers through a runner."""

    def __init__(
        self,
        runner: Runner,
        *,
        dispatch: Dispatch | None = None,
        batch_size: int = 200,
        reclaim_after: float = 60.0,
    ) -> None:
        self.runner = runner
        self.registry = runner.registry
        self.engine: Engine = runner.store.engine
        self.clock = runner.store.clock
        self.dispatch = dispatch or self._inline
        self.batch_size = batch_size
        self.reclaim_after = reclaim_after
        self._previous = SqlSignalSource(self.engine)  # the table ingestion writes

    # -- event triggers ---------------------------------------------------------------------

    def ingest(
        self,
        *,
        tenant: str,
        subject_id: str,
        values: Mapping[str, Any],
        source: str,
        observed_at: float | None = None,
        principal: str | None = None,
    ) -> Ingested:
        """Ingest a batch (all or nothing, audited), then fire the event triggers it satisfies.

        The triggers run after the batch committed; a trigger that fails is logged and
        reported in `failed`, never undoing the ingestion. The runs it fires record
        `principal` (the ingesting key) as whose request caused them.
        """
        at = self.clock() if observed_at is None else observed_at
        watched = [t for t in self.registry.triggers.events() if t.signals & values.keys()]
        names = sorted({n for t in watched for n in t.signals} & values.keys())
        before = self._previous.fetch(tenant, subject_id, names) if names else {}
        count = self.registry.signals.ingest(
            self.runner.store.engine, self.runner.store.audit, tenant=tenant,
            subject_id=subject_id, values=values, source=source, observed_at=at,
        )  # fmt: skip
        # A backfill older than what we hold says nothing new: it fires nothing.
        batch = {
            n: self._checked(n, values[n])
            for n in names
            if n not in before or before[n].observed_at <= at
        }
        previous = {n: v.value for n, v in before.items()}
        result = Ingested(count=count)
        for trigger in watched:
            matched = trigger.match(batch, previous)
            if matched is None:
                continue
            try:
                fired = self.fire(trigger, tenant, subject_id, matched, principal=principal)
            except (CopilotError, OperationalError) as exc:
                log.error("trigger %s for %s failed: %s", trigger.name, subject_id, exc)
                result.failed.append({"trigger": trigger.name, "error": str(exc)})
                continue
            if fired is not None:
                result.fired.append(fired)
        return result

    def _checked(self, name: str, value: Any) -> Any:
        spec = self.registry.signals.get(name)
        return spec.check(value) if spec is not None else value  # dates normalized

    def fire(
        self,
        trigger: EventTrigger,
        tenant: str,
        subject_id: str,
        matched: Condition,
        *,
        principal: str | None = None,
    ) -> Fired | None:
        """Start the trigger's run unless a debounce window is open for the subject; the run's
        principal is `principal` (whose signals fired it), else the trigger's own name."""
        window = self._claim(trigger, tenant, subject_id, self.clock())
        if window is None:
            return None
        cause = {
            "kind": "event",
            "trigger": trigger.name,
            "matched": str(matched),
            "window_start": iso(window, ms=True),
            "debounce_s": trigger.debounce.total_seconds(),
        }
        key = trigger.key(window, subject_id)
        fired = self._start(trigger, tenant, subject_id, key, cause, principal)
        t = trigger_state.c
        with self.engine.begin() as conn:
            conn.execute(
                update(trigger_state)
                .where(t.tenant == tenant, t.trigger == trigger.name, t.subject_id == subject_id)
                .where(t.fired_at == window)
                .values(run_id=fired.run_id)
            )
        return fired

    def _start(
        self,
        source: Schedule | EventTrigger,
        tenant: str,
        subject_id: str,
        key: str,
        cause: dict[str, Any],
        principal: str | None = None,
    ) -> Fired:
        """The source's run for the subject under `key` (started, or found already started)."""
        run, created = self.runner.trigger(
            source.workflow,
            subject_id,
            tenant=tenant,
            inputs=source.inputs,
            idempotency_key=key,
            triggered_by=source.triggered_by,
            cause=cause,
            principal=principal or source.triggered_by,
        )
        return Fired(cause=source.triggered_by, subject_id=subject_id, run_id=run.id,
                     state=run.state.value, created=created)  # fmt: skip

    def _claim(
        self, trigger: EventTrigger, tenant: str, subject_id: str, now: float
    ) -> float | None:
        """Open a debounce window (compare-and-set): its start, or None while one is open.

        A window whose firer died before creating its run (no run id after `reclaim_after`
        seconds) is finished by the next caller, with the same idempotency key.
        """
        t = trigger_state.c
        upsert = _insert(self.engine)(trigger_state).values(
            tenant=tenant, trigger=trigger.name, subject_id=subject_id, fired_at=now, run_id=None
        )
        stmt = upsert.on_conflict_do_update(
            index_elements=[t.tenant, t.trigger, t.subject_id],
            set_={"fired_at": now, "run_id": None},
            where=t.fired_at <= now - trigger.debounce.total_seconds(),
        ).returning(t.fired_at)
        key = (t.tenant == tenant, t.trigger == trigger.name, t.subject_id == subject_id)
        with self.engine.begin() as conn:
            if conn.execute(stmt).first() is not None:
                return now
            row = conn.execute(select(t.fired_at, t.run_id).where(*key)).first()
        if row is not None and row.run_id is None and now - row.fired_at >= self.reclaim_after:
            return float(row.fired_at)
        return None

    # -- schedules --------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> TickReport:
        """Find every schedule's due subjects and dispatch them in batches (what beat calls)."""
        now = self.clock() if now is None else now
        report = TickReport()
        for schedule in self.registry.triggers.schedules():
            start = schedule.period_start(now)
            for tenant, due in self.due(schedule, now).items():
                for i in range(0, len(due), self.batch_size):
                    self.dispatch(schedule.name, tenant, start, due[i : i + self.batch_size])
                    report.batches += 1
                report.due[schedule.name] = report.due.get(schedule.name, 0) + len(due)
        return report

    def due(self, schedule: Schedule, now: float) -> dict[str, list[str]]:
        """Per tenant, the selected subjects whose moment in this period came and that have no run."""
        start = schedule.period_start(now)
        found: dict[str, list[str]] = {}
        for tenant, subjects in self._selected(schedule.subjects, now).items():
            done = self._done(schedule, tenant, start)
            due = [
                s
                for s in sorted(subjects)
                if schedule.key(start, s) not in done
                and start + schedule.offset(tenant, s, start) <= now
            ]
            if due:
                found[tenant] = due
        return found

    def run_batch(
        self, name: str, tenant: str, period_start: float, subject_ids: list[str]
    ) -> list[Fired]:
        """Start the period's run for each subject (a fan-out task); a past period's batch does nothing."""
        schedule = self.registry.triggers.schedule(name)
        if schedule.period_start(self.clock()) != period_start:
            log.warning("schedule %s: batch for period %s arrived late; dropped",
                        name, iso(period_start))  # fmt: skip
            return []
        cause = {
            "kind": "schedule",
            "schedule": name,
            "period_start": iso(period_start),
            "period_end": iso(period_start + schedule.every.total_seconds()),
        }
        return [
            self._start(schedule, tenant, s, schedule.key(period_start, s), cause)
            for s in subject_ids
        ]

    def _inline(self, name: str, tenant: str, period_start: float, subject_ids: list[str]) -> None:
        self.run_batch(name, tenant, period_start, subject_ids)

    def _selected(self, subjects: Subjects, now: float) -> dict[str, set[str]]:
        c = signals.c
        stmt = select(c.tenant, c.subject_id).where(c.name.in_(subjects.names)).distinct()
        if subjects.seen_within is not None:
            stmt = stmt.where(c.observed_at >= now - subjects.seen_within.total_seconds())
        found: dict[str, set[str]] = {}
        with readonly(self.engine.connect()) as conn:
            for tenant, subject_id in conn.execute(stmt):
                found.setdefault(tenant, set()).add(subject_id)
        if subjects.where:
            found = {t: self._where(t, s, subjects.where) for t, s in found.items()}
        return found

    def _where(self, tenant: str, subjects: set[str], where: tuple[Condition, ...]) -> set[str]:
        """The subjects whose latest values satisfy every condition."""
        c = signals.c
        stmt = (
            select(c.subject_id, c.name, c.value)
            .where(c.tenant == tenant, c.name.in_({w.signal for w in where}))
            .order_by(c.observed_at, c.id)
        )
        latest: dict[tuple[str, str], str] = {}
        with readonly(self.engine.connect()) as conn:
            for subject_id, name, value in conn.execute(stmt):
                latest[(subject_id, name)] = value
        return {
            s
            for s in subjects
            if all(
                (s, w.signal) in latest and w.holds(json.loads(latest[(s, w.signal)]))
                for w in where
            )
        }

    def _done(self, schedule: Schedule, tenant: str, start: float) -> set[str]:
        """Idempotency keys of this schedule's runs in the period (read through the created index)."""
        c = runs.c
        stmt = select(c.idempotency_key).where(
            c.tenant == tenant,
            c.created_at >= start - CLOCK_SKEW,
            c.triggered_by == schedule.triggered_by,
        )
        with readonly(self.engine.connect()) as conn:
            return {k for k in conn.execute(stmt).scalars() if k is not None}


def _insert(engine: Engine) -> Any:
    """The dialect's INSERT, which has ON CONFLICT ... DO UPDATE ... WHERE (both have it)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
