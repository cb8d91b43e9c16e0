"""Schedules and event triggers on real SQLite and PostgreSQL: no duplicate periods, one run per storm."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, select

from audit import Actor, Query, SqlAuditStore
from copilot.db.tables import runs, signals, trigger_state
from copilot.engine.executors import OutboxExecutor
from copilot.engine.proactive import Proactive
from copilot.engine.runner import Runner
from copilot.engine.runs import Run, RunState
from copilot.engine.store import RunStore
from copilot.governance.consent import Consent, Preferences
from copilot.governance.sources import SqlSignalSource
from copilot.llm import ModelAccess
from copilot.measure.holdouts import held_out
from copilot.workflow.registry import Registry
from copilot.workflow.triggers import EventTrigger, Schedule, Subjects
from tests.support import triggered

MONDAY = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a period start of weekly schedules
WEEKLY = Schedule(
    name="weekly_pulse",
    workflow="pulse",
    every=timedelta(days=7),
    jitter=timedelta(hours=6),
    subjects=Subjects(having=("pulse_usage",)),
)
DROP = EventTrigger(
    name="usage_drop",
    workflow="pulse",
    when=("pulse_usage <= -30", 'pulse_billing becomes "failed"'),
    debounce=timedelta(hours=1),
)


class Clock:
    """A clock the test moves."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


Make = Callable[..., Proactive]


@pytest.fixture
def make(engine: Engine) -> Iterator[Make]:
    """Proactive over a runner with the `pulse` workflow, the given triggers and clock."""
    stores: list[RunStore] = []

    def build(
        triggers: Sequence[Schedule | EventTrigger],
        *,
        clock: Callable[[], float] = time.time,
        holdouts: dict[str, float] | None = None,
    ) -> Proactive:
        registry = Registry([triggered.pulse])
        for spec in triggered.SIGNALS.specs():
            registry.signals.register(spec)
        for item in triggers:
            registry.triggers.register(item)
        registry.check_signals()
        registry.check_triggers()
        store = RunStore(engine, SqlAuditStore(engine), clock=clock)
        stores.append(store)
        runner = Runner(
            store,
            registry,
            context=SqlSignalSource(engine),
            model=ModelAccess(None, None),
            executors={"outbox": OutboxExecutor(engine)},
            owner="test",
            consent=Consent(engine, store.audit, clock=clock),
            holdouts=holdouts,
        )
        return Proactive(runner)

    yield build
    for store in stores:
        store.close()


def seed(engine: Engine, subjects: int, *, at: float, tenant: str = "acme") -> list[str]:
    ids = [f"acct-{i:03d}" for i in range(subjects)]
    audit = SqlAuditStore(engine)
    for s in ids:
        triggered.SIGNALS.ingest(engine, audit, tenant=tenant, subject_id=s,
                                 values={"pulse_usage": 5.0}, source="crm", observed_at=at)  # fmt: skip
    return ids


def scheduled(engine: Engine, name: str = "weekly_pulse") -> list[Run]:
    from copilot.engine.runs import run_from

    with engine.connect() as conn:
        rows = conn.execute(select(runs).where(runs.c.triggered_by == f"schedule:{name}"))
        return [run_from(r._mapping) for r in rows]


# -- schedules ----------------------------------------------------------------------------


def test_a_restarted_beat_within_the_period_starts_no_duplicate_runs(
    make: Make, engine: Engine
) -> None:
    clock = Clock(MONDAY + 7 * 3600)  # past the jitter: every subject is due
    ids = seed(engine, 40, at=MONDAY - 3600)
    first = make([WEEKLY], clock=clock).tick()
    assert first.due == {"weekly_pulse": 40}
    # The beat restarts (a new process, nothing in memory) twice later in the same period.
    for later in (60.0, 3 * 86400):
        clock.t = MONDAY + 7 * 3600 + later
        assert make([WEEKLY], clock=clock).tick().due == {}
    found = scheduled(engine)
    assert sorted(r.subject_id for r in found) == ids
    assert {r.idempotency_key for r in found} == {
        f"schedule:weekly_pulse:2026-11-02T00:00:00Z:{s}" for s in ids
    }
    # The next period runs everyone once more.
    clock.t = MONDAY + 7 * 86400 + 7 * 3600
    assert make([WEEKLY], clock=clock).tick().due == {"weekly_pulse": 40}
    assert len(scheduled(engine)) == 80


def test_two_beats_ticking_at_once_start_each_subject_once(make: Make, engine: Engine) -> None:
    clock = Clock(MONDAY + 7 * 3600)
    seed(engine, 30, at=MONDAY - 3600)
    beats = [make([WEEKLY], clock=clock) for _ in range(4)]
    barrier = threading.Barrier(len(beats))

    def tick(p: Proactive) -> None:
        barrier.wait()
        p.tick()

    with ThreadPoolExecutor(len(beats)) as pool:
        list(pool.map(tick, beats))
    found = scheduled(engine)
    assert len(found) == 30 and len({r.subject_id for r in found}) == 30


def test_jitter_spreads_subjects_deterministically_over_the_start_of_the_period(
    make: Make, engine: Engine
) -> None:
    clock = Clock(MONDAY + 3 * 3600)  # half of the six-hour jitter
    seed(engine, 60, at=MONDAY - 3600)
    p = make([WEEKLY], clock=clock)
    offsets = {s: WEEKLY.offset("acme", s, MONDAY) for s in (f"acct-{i:03d}" for i in range(60))}
    early = sorted(s for s, o in offsets.items() if o <= 3 * 3600)
    assert 10 < len(early) < 50  # spread, not bunched
    p.tick()
    assert sorted(r.subject_id for r in scheduled(engine)) == early
    clock.t = MONDAY + 6 * 3600
    p.tick()
    assert len(scheduled(engine)) == 60


def test_the_selector_keeps_active_subjects_that_satisfy_where(make: Make, engine: Engine) -> None:
    audit = SqlAuditStore(engine)
    values = {
        "a-new": ({"pulse_usage": 1.0, "pulse_tier": "enterprise"}, MONDAY - 86400),
        "a-old": ({"pulse_usage": 1.0, "pulse_tier": "enterprise"}, MONDAY - 90 * 86400),
        "a-small": ({"pulse_usage": 1.0, "pulse_tier": "starter"}, MONDAY - 86400),
    }
    for s, (v, at) in values.items():
        triggered.SIGNALS.ingest(engine, audit, tenant="acme", subject_id=s, values=v,
                                 source="crm", observed_at=at)  # fmt: skip
    enterprise = WEEKLY.model_copy(
        update={
            "subjects": Subjects(
                having=("pulse_usage",),
                where=['pulse_tier == "enterprise"'],
                seen_within=timedelta(days=30),
            )
        }
    )
    make([enterprise], clock=Clock(MONDAY + 7 * 3600)).tick()
    assert [r.subject_id for r in scheduled(engine)] == ["a-new"]


def test_a_batch_that_arrives_after_its_period_does_nothing(make: Make, engine: Engine) -> None:
    clock = Clock(MONDAY + 7 * 86400 + 60)  # the next period already began
    seed(engine, 3, at=MONDAY)
    assert make([WEEKLY], clock=clock).run_batch("weekly_pulse", "acme", MONDAY, ["acct-000"]) == []
    assert scheduled(engine) == []


def test_scheduled_runs_respect_opt_out_snooze_and_holdouts_and_record_their_cause(
    make: Make, engine: Engine
) -> None:
    clock = Clock(MONDAY + 7 * 3600)
    ids = seed(engine, 12, at=MONDAY - 3600)
    p = make([WEEKLY], clock=clock, holdouts={"pulse": 0.5})
    consent = p.runner.consent
    assert consent is not None
    consent.set(Preferences(tenant="acme", subject_id="acct-000", opt_out_workflows=("pulse",)),
                actor=Actor.human("acct-000"))  # fmt: skip
    consent.set(Preferences(tenant="acme", subject_id="acct-001", snooze_until=clock.t + 86400),
                actor=Actor.human("acct-001"))  # fmt: skip
    p.tick()
    by = {r.subject_id: r for r in scheduled(engine)}
    assert by["acct-000"].state == RunState.SKIPPED and by["acct-000"].reasons == [
        "opted_out:pulse"
    ]
    assert by["acct-001"].state == RunState.SKIPPED
    assert by["acct-001"].reasons[0].startswith("snoozed_until:")
    for s in ids[2:]:
        assert by[s].state == RunState.QUEUED
        assert by[s].holdout == held_out(s, "pulse", 0.5, salt="copilot")
    assert any(by[s].holdout for s in ids[2:]) and not all(by[s].holdout for s in ids[2:])
    p.runner.store.audit.settle("acme")
    created = p.runner.store.audit.query("acme", Query(event_type="run.created"))
    assert len(created) == 12
    for event in created:
        assert event.actor == Actor.system("schedule:weekly_pulse")
        assert event.data["cause"] == {
            "kind": "schedule",
            "schedule": "weekly_pulse",
            "period_start": "2026-11-02T00:00:00Z",
            "period_end": "2026-11-09T00:00:00Z",
        }
    skipped = next(e for e in created if e.subject_id == "acct-000")
    assert skipped.data["reason"] == "opted_out:pulse"


# -- event triggers -----------------------------------------------------------------------


def fired_runs(engine: Engine, trigger: str = "usage_drop") -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.id).where(runs.c.triggered_by == f"trigger:{trigger}"))
        return list(rows.scalars())


@pytest.mark.slow
def test_an_event_storm_of_1000_signals_for_one_subject_starts_one_run(
    make: Make, engine: Engine
) -> None:
    p = make([DROP])  # the real clock: the storm lasts seconds, the debounce an hour

    def ingest(i: int) -> int:
        result = p.ingest(tenant="acme", subject_id="acct-1", values={"pulse_usage": -31.0 - i % 50},
                          source="analytics")  # fmt: skip
        assert result.failed == []
        return len(result.fired)

    with ThreadPoolExecutor(12) as pool:
        fired = sum(pool.map(ingest, range(1000)))
    assert fired == 1
    ids = fired_runs(engine)
    assert len(ids) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(signals)).scalar() == 1000
        state = conn.execute(select(trigger_state)).one()
    assert state.run_id == ids[0] and state.trigger == "usage_drop"
    p.runner.store.audit.settle("acme")
    created = p.runner.store.audit.query("acme", Query(event_type="run.created"))
    assert [e.run_id for e in created] == ids
    assert created[0].data["cause"]["trigger"] == "usage_drop"
    assert created[0].data["cause"]["matched"].startswith("pulse_usage <= -30")


def test_a_trigger_fires_again_only_after_its_debounce_window(make: Make, engine: Engine) -> None:
    clock = Clock(MONDAY)
    p = make([DROP], clock=clock)
    drop = {"pulse_usage": -40.0}
    assert len(p.ingest(tenant="acme", subject_id="a", values=drop, source="x").fired) == 1
    clock.t += 3599
    assert p.ingest(tenant="acme", subject_id="a", values=drop, source="x").fired == []
    assert len(p.ingest(tenant="acme", subject_id="b", values=drop, source="x").fired) == 1
    clock.t += 1  # the window (from the first firing, not from the last signal) is over
    again = p.ingest(tenant="acme", subject_id="a", values=drop, source="x").fired
    assert len(again) == 1 and again[0].created
    assert (
        p.ingest(tenant="acme", subject_id="a", values={"pulse_usage": -5.0}, source="x").fired
        == []
    )
    assert len(fired_runs(engine)) == 3


def test_becomes_fires_on_the_edge_not_on_a_repeated_value(make: Make, engine: Engine) -> None:
    clock = Clock(MONDAY)
    p = make([DROP], clock=clock)

    def send(status: str) -> int:
        clock.t += 2 * 3600  # past any debounce window: only the condition decides
        return len(p.ingest(tenant="acme", subject_id="a", values={"pulse_billing": status},
                            source="billing").fired)  # fmt: skip

    assert [send(s) for s in ("current", "failed", "failed", "current", "failed")] == [
        0,
        1,
        0,
        0,
        1,
    ]


def test_a_backfill_older_than_the_latest_value_fires_nothing(make: Make, engine: Engine) -> None:
    p = make([DROP], clock=Clock(MONDAY))
    p.ingest(tenant="acme", subject_id="a", values={"pulse_usage": 3.0}, source="x")
    old = p.ingest(tenant="acme", subject_id="a", values={"pulse_usage": -60.0}, source="x",
                   observed_at=MONDAY - 7 * 86400)  # fmt: skip
    assert old.count == 1 and old.fired == []


def test_a_window_whose_firer_died_before_its_run_is_finished_by_the_next_signal(
    make: Make, engine: Engine
) -> None:
    clock = Clock(MONDAY)
    p = make([DROP], clock=clock)
    with engine.begin() as conn:  # what a firer leaves when it dies between claim and run
        conn.execute(insert(trigger_state).values(tenant="acme", trigger="usage_drop",
                                                  subject_id="a", fired_at=MONDAY - 120))  # fmt: skip
    fired = p.ingest(tenant="acme", subject_id="a", values={"pulse_usage": -40.0}, source="x").fired
    assert len(fired) == 1
    run = p.runner.store.get(fired[0].run_id)
    assert run.idempotency_key == "trigger:usage_drop:2026-11-01T23:58:00.000Z:a"
    assert (
        p.ingest(tenant="acme", subject_id="a", values={"pulse_usage": -41.0}, source="x").fired
        == []
    )


def test_triggered_runs_respect_opt_out_and_are_audited_with_the_trigger(
    make: Make, engine: Engine
) -> None:
    clock = Clock(MONDAY)
    p = make([DROP], clock=clock)
    assert p.runner.consent is not None
    p.runner.consent.set(Preferences(tenant="acme", subject_id="out", opt_out_all=True),
                         actor=Actor.human("out"))  # fmt: skip
    fired = p.ingest(tenant="acme", subject_id="out", values={"pulse_usage": -50.0}, source="x")
    run = p.runner.store.get(fired.fired[0].run_id)
    assert (run.state, run.reasons, run.triggered_by) == (
        RunState.SKIPPED, ["opted_out:all"], "trigger:usage_drop"
    )  # fmt: skip
    p.runner.store.audit.settle("acme")
    [event] = p.runner.store.audit.query("acme", Query(event_type="run.created"))
    assert event.actor == Actor.system("trigger:usage_drop")
    assert event.data["reason"] == "opted_out:all"
    assert event.data["cause"] == {
        "kind": "event",
        "trigger": "usage_drop",
        "matched": "pulse_usage <= -30",
        "window_start": "2026-11-02T00:00:00.000Z",
        "debounce_s": 3600.0,
    }
